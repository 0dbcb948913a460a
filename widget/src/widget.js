/* The AVRR web chat: the body of function (io, css, script), called by build.mjs's output.
   ES5, for old phones. Message text is set with textContent only: it can contain markup. */
"use strict";
// Each language in its own name, then the UI: name|title|input|send|close|open chat|
// language|connecting|reconnecting|forget (button)|forget (the question)
var UI = {
  en: "English|IOM Hungary assistant|Write your question…|Send|Close|Open chat|Language|Connecting…|Reconnecting…|End and forget this chat|Delete this chat and everything stored about it here? This cannot be undone.",
  hu: "Magyar|Az IOM Magyarország asszisztense|Írja be a kérdését…|Küldés|Bezárás|Csevegés megnyitása|Nyelv|Kapcsolódás…|Újrakapcsolódás…|Beszélgetés befejezése és törlése|Törli ezt a beszélgetést és mindent, amit itt tárolunk róla? Ez nem vonható vissza.",
  ar: "العربية|مساعد IOM في هنغاريا|اكتب سؤالك…|إرسال|إغلاق|فتح المحادثة|اللغة|جارٍ الاتصال…|جارٍ إعادة الاتصال…|إنهاء هذه المحادثة ومحوها|حذف هذه المحادثة وكل ما هو محفوظ عنها هنا؟ لا يمكن التراجع عن ذلك.",
  fa: "فارسی|دستیار IOM در مجارستان|سؤال خود را بنویسید…|ارسال|بستن|باز کردن گفتگو|زبان|در حال اتصال…|در حال اتصال دوباره…|پایان و پاک کردن این گفتگو|این گفتگو و هر چیزی که اینجا درباره آن ذخیره شده، پاک شود؟ این کار برگشت ندارد.",
  ps: "پښتو|د IOM هنګري مرستیال|خپله پوښتنه ولیکئ…|ولېږئ|بندول|خبرې اترې پرانیزئ|ژبه|نښلول کېږي…|بیا نښلول کېږي…|دا چټ ختم او پاک کړئ|ایا دا چټ او هر هغه څه چې دلته د دې په اړه ساتل شوي، پاک شي؟ له پاکېدو وروسته بېرته نه راځي.",
  ur: "اردو|ہنگری میں IOM کا اسسٹنٹ|اپنا سوال لکھیں…|بھیجیں|بند کریں|چیٹ کھولیں|زبان|رابطہ ہو رہا ہے…|دوبارہ رابطہ ہو رہا ہے…|یہ چیٹ ختم کر کے مٹا دیں|یہ چیٹ اور اس کے بارے میں یہاں رکھی گئی ہر چیز مٹا دیں؟ یہ واپس نہیں ہو سکے گا۔",
  sq: "Shqip|Asistenti i IOM në Hungari|Shkruani pyetjen tuaj…|Dërgo|Mbyll|Hap bisedën|Gjuha|Po lidhet…|Po rilidhet…|Mbyll dhe fshi këtë bisedë|Të fshihet kjo bisedë dhe gjithçka që është ruajtur këtu për të? Ky veprim nuk mund të zhbëhet.",
  ru: "Русский|Помощник IOM в Венгрии|Напишите ваш вопрос…|Отправить|Закрыть|Открыть чат|Язык|Подключение…|Повторное подключение…|Завершить и забыть этот чат|Удалить этот чат и всё, что здесь о нём сохранено? Это нельзя будет отменить.",
  uk: "Українська|Помічник IOM в Угорщині|Напишіть ваше запитання…|Надіслати|Закрити|Відкрити чат|Мова|Підключення…|Повторне підключення…|Завершити й забути цей чат|Видалити цей чат і все, що тут про нього збережено? Цю дію не можна скасувати.",
  tr: "Türkçe|IOM Macaristan asistanı|Sorunuzu yazın…|Gönder|Kapat|Sohbeti aç|Dil|Bağlanıyor…|Yeniden bağlanıyor…|Sohbeti bitir ve sil|Bu sohbet ve burada onunla ilgili saklanan her şey silinsin mi? Bu işlem geri alınamaz.",
  fr: "Français|Assistant de l’OIM Hongrie|Écrivez votre question…|Envoyer|Fermer|Ouvrir la discussion|Langue|Connexion…|Reconnexion…|Terminer et effacer cette discussion|Supprimer cette discussion et tout ce qui est gardé à son sujet ici ? On ne pourra pas revenir en arrière.",
  vi: "Tiếng Việt|Trợ lý của IOM Hungary|Viết câu hỏi của bạn…|Gửi|Đóng|Mở trò chuyện|Ngôn ngữ|Đang kết nối…|Đang kết nối lại…|Kết thúc và xóa cuộc trò chuyện này|Xóa cuộc trò chuyện này và mọi thứ được lưu về nó ở đây? Xóa rồi thì không lấy lại được."
};
var RTL = ["ar", "fa", "ps", "ur"];
var SESSION = "avrr.session", SECRET = "avrr.secret"; // never text: phones are shared
var MAX_CHARS = 4096;

script = script || document.querySelector("script[data-server]");
if (!script || document.querySelector("avrr-widget")) return;
// The origin only: a path would be taken for a socket.io namespace.
var server = new URL(script.getAttribute("data-server") || script.src, location.href).origin;

function known(code) { return Object.prototype.hasOwnProperty.call(UI, code); }
// The session lives as long as the tab (sessionStorage), unless the partner's page asks
// for data-storage="local": then it outlives the browser (shared phones: see docs/widget.md).
function storage() {
  try { return script.getAttribute("data-storage") === "local" ? localStorage : sessionStorage; }
  catch (e) { return null; }
}
function load(key) {
  try { return storage().getItem(key); } catch (e) { return null; }
}
function save(key, value) {
  try { storage().setItem(key, value); } catch (e) { /* storage off */ }
}
function forget() {
  try { [SESSION, SECRET, "avrr.lang"].forEach(function (key) { storage().removeItem(key); }); }
  catch (e) { /* storage off */ }
}

var browserLang = (navigator.language || "").slice(0, 2).toLowerCase();
var chosen = known(load("avrr.lang")) ? load("avrr.lang") : null;
var lang = chosen || (known(browserLang) ? browserLang : "en");
var token = load(SESSION), secret = load(SECRET);
var socket, state, failed, refused, notice, forgetting;
var retryIn = 3000; // ms before a message not processed is sent again
var ready = false; // sending waits for session_history
var queue = []; // {message, node} not yet processed; queue[0] is sent first
var sending = false;

// An element with class "avrr-<name>" and data-testid "<name>", added to `parent`.
function part(tag, name, parent, attrs, text) {
  var node = document.createElement(tag);
  node.className = "avrr-" + name;
  node.setAttribute("data-testid", name);
  for (var key in attrs) node.setAttribute(key, attrs[key]);
  if (text) node.textContent = text;
  return parent ? parent.appendChild(node) : node;
}

// In a shadow root where there is one: the page's CSS and ours stay apart.
var host = document.createElement("avrr-widget");
var tree = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;
var root = part("div", "root");
var launcher = part("button", "launcher", root, { type: "button" });
var panel = part("div", "panel", root, { role: "dialog", "aria-labelledby": "avrr-title", hidden: "" });
var header = part("div", "header", panel);
var title = part("div", "title", header, { id: "avrr-title" });
var langButton = part("button", "language", header, { type: "button", "aria-expanded": "false" });
var forgetButton = part("button", "forget", header, { type: "button" }, "🗑");
var closeButton = part("button", "close", header, { type: "button" }, "×");
var langList = part("div", "languages", panel, { role: "group", hidden: "" });
var status = part("div", "status", panel, { role: "status" });
var log = part("div", "messages", panel, { role: "log", "aria-live": "polite", tabindex: "0", lang: "" });
var form = part("form", "form", panel);
var input = part("input", "input", form, { maxlength: MAX_CHARS, autocomplete: "off", enterkeyhint: "send", dir: "auto" });
var sendButton = part("button", "send", form, { type: "submit" });

Object.keys(UI).forEach(function (code) {
  part("button", "language-option", langList, { type: "button", lang: code, dir: "auto" }, text(0, code))
    .onclick = function () { chooseLanguage(code); };
});

function text(index, code) { return UI[code || lang].split("|")[index]; }

function applyLanguage() {
  root.dir = panel.dir = RTL.indexOf(lang) >= 0 ? "rtl" : "ltr";
  root.lang = lang;
  title.textContent = text(1);
  input.placeholder = text(2);
  input.setAttribute("aria-label", text(2));
  sendButton.textContent = text(3);
  closeButton.setAttribute("aria-label", text(4));
  forgetButton.setAttribute("aria-label", text(9));
  forgetButton.title = text(9);
  launcher.textContent = text(5);
  langButton.textContent = text(0);
  langButton.setAttribute("aria-label", text(6) + ": " + text(0));
  langList.setAttribute("aria-label", text(6));
  [].forEach.call(langList.children, function (option) {
    option.setAttribute("aria-current", String(option.lang === lang));
  });
  showState(state);
}

function showState(next) {
  state = next || "idle";
  panel.setAttribute("data-state", state);
  status.textContent = state === "connecting" ? text(7) : state === "reconnecting" ? text(8) : "";
}

function scrollDown() { log.scrollTop = log.scrollHeight; }

function bubble(sender, message) {
  var node = part("div", "message", log, { dir: "auto", "data-sender": sender }, message);
  node.className += " avrr-" + sender;
  scrollDown();
  return node;
}

function quickReplies(replies) {
  if (!Array.isArray(replies)) return;
  var group = part("div", "quick-replies", log, { role: "group" });
  replies.forEach(function (reply) {
    if (!reply || typeof reply.payload !== "string") return;
    var button = part("button", "quick-reply", group, { type: "button", dir: "auto" }, String(reply.title || reply.payload));
    button.onclick = function (event) {
      submit(reply.payload, button.textContent);
      if (!event.detail) input.focus(); // pressed with the keyboard: keep focus in the panel
    };
  });
  if (!group.firstChild) log.removeChild(group);
  scrollDown();
}

// The conversation as the server keeps it, then what is typed but not sent yet.
function showHistory(messages) {
  var lastUser = -1;
  messages.forEach(function (m, i) { if (m && m.sender === "user") lastUser = i; });
  log.textContent = "";
  messages.forEach(function (m, i) {
    if (!m || typeof m.text !== "string") return;
    var choice = /^\/change_language\{"language":"(\w\w)"\}$/.exec(m.text); // shown by name
    if (m.text) bubble(m.sender === "user" ? "user" : "bot", choice && known(choice[1]) ? text(0, choice[1]) : m.text);
    // Buttons offered since the person last wrote still count.
    if (i > lastUser && !queue.length) quickReplies(m.quick_replies);
  });
  queue.forEach(function (item) { log.appendChild(item.node); });
  scrollDown();
}

function submit(message, shown) {
  message = message.slice(0, MAX_CHARS);
  // Not half of an emoji: the server would keep only a replacement sign of it.
  if (/[\ud800-\udbff]$/.test(message)) message = message.slice(0, -1);
  if (!message) return;
  [].forEach.call(log.querySelectorAll(".avrr-quick-replies"), function (group) {
    log.removeChild(group);
  });
  var node = bubble("user", shown || message);
  node.className += " avrr-pending";
  // An id of its own, the same when it is sent again: the desk takes it once.
  var id = Array.prototype.map.call(crypto.getRandomValues(new Uint8Array(12)), function (b) {
    return (b + 256).toString(16).slice(1);
  }).join("");
  queue.push({ message: message, node: node, id: id });
  flush();
}

// One message at a time, each acknowledged once the server has processed it: the order
// is kept and nothing typed is lost to a dropped connection.
function flush() {
  if (!ready || sending || !queue.length) return;
  var item = queue[0];
  sending = true;
  failed = refused = false;
  retryIn = 3000;
  var data = { message: item.message, message_id: item.id, session_id: token, metadata: { language_hint: chosen || browserLang || lang } };
  socket.emit("user_uttered", data, function () {
    if (queue[0] !== item || !sending) return;
    sending = false;
    if (failed) return setTimeout(flush, retryIn); // not processed, or too many: again
    queue.shift();
    if (refused) { // the server can never take it (only invisible characters, say)
      item.node.className = item.node.className.replace(" avrr-pending", " avrr-refused");
      return flush();
    }
    item.node.className = item.node.className.replace(" avrr-pending", "");
    flush();
  });
}

function requestSession() {
  ready = false;
  socket.emit("session_request", { session_id: token, session_secret: secret });
}

function connect() {
  if (socket) return;
  showState("connecting");
  socket = io(server, { path: "/socket.io", transports: ["websocket"] });
  socket.on("connect", requestSession);
  socket.on("disconnect", function (reason) {
    ready = sending = false;
    showState("reconnecting");
    if (reason === "io server disconnect") socket.connect();
  });
  socket.on("session_confirm", function (data) {
    var issued = typeof data === "string" ? data : data && data.session_id;
    if (!issued) return;
    if (issued !== token) showHistory([]); // a new session: the old conversation is gone
    save(SESSION, token = issued);
  });
  // Too many sessions asked for from this address: ask again once the server says so.
  socket.on("session_refused", function (data) {
    setTimeout(function () {
      if (!ready && socket.connected) requestSession();
    }, Math.ceil(((data && data.retry_after) || 5) * 1000));
  });
  socket.on("session_secret", function (data) {
    if (data && data.session_id === token) save(SECRET, secret = data.session_secret);
  });
  socket.on("session_history", function (data) {
    showHistory((data && data.messages) || []);
    if (notice) bubble("bot", notice);
    notice = null;
    showState("ready");
    ready = true;
    flush();
  });
  socket.on("bot_uttered", function (data) {
    if (!data) return;
    if (data.text && typeof data.text === "string") bubble("bot", data.text);
    quickReplies(data.quick_replies || data.buttons);
  });
  socket.on("message_failed", function () { failed = true; });
  // Too many messages: this one is sent again once the server says it may be (an "End
  // and forget" too); any other refusal is final and shown on the message.
  socket.on("message_refused", function (data) {
    var wait = data && data.retry_after;
    if (!wait) { refused = true; return; }
    retryIn = Math.ceil(wait * 1000);
    if (sending) failed = true;
    else if (forgetting) setTimeout(emitForget, retryIn);
  });
  // The conversation is deleted: nothing of it stays on this device either.
  socket.on("session_forgotten", function (data) {
    var asked = forgetting;
    forgetting = false;
    if (!data || !data.deleted) return data && data.text && bubble("bot", data.text);
    forget();
    token = secret = null;
    // "End and forget": nothing typed is kept. A typed "delete my data": its turn is over
    // (the acknowledgement comes after this); what was typed since goes to the new session.
    if (asked) queue = [];
    else if (sending) { queue.shift(); sending = false; }
    notice = data.text; // shown once the new, empty session is there
    requestSession();
  });
}

function endAndForget() {
  if (!socket || !token || !window.confirm(text(10))) return;
  forgetting = true;
  emitForget();
}

function emitForget() { socket.emit("forget_session", { session_id: token }); }

function toggleLanguages(show) {
  langList.hidden = !show;
  langButton.setAttribute("aria-expanded", String(show));
  if (show) langList.querySelector('[aria-current="true"]').focus();
}

function chooseLanguage(code) {
  save("avrr.lang", lang = chosen = code);
  applyLanguage();
  toggleLanguages(false);
  input.focus();
  submit('/change_language{"language":"' + code + '"}', text(0, code));
}

function open() {
  panel.hidden = false;
  launcher.hidden = true;
  connect();
  input.focus();
}

function close() {
  toggleLanguages(false);
  panel.hidden = true;
  launcher.hidden = false;
  launcher.focus();
}

launcher.onclick = open;
closeButton.onclick = close;
forgetButton.onclick = endAndForget;
langButton.onclick = function () { toggleLanguages(langList.hidden); };
panel.onkeydown = function (event) {
  if (event.key !== "Escape") return;
  if (langList.hidden) return close();
  toggleLanguages(false);
  langButton.focus();
};
form.onsubmit = function (event) {
  event.preventDefault();
  submit(input.value.trim());
  input.value = "";
  input.focus();
};

applyLanguage();

function start() {
  var style = document.createElement("style");
  style.textContent = css;
  if (script.nonce) style.nonce = script.nonce; // pages whose CSP names a nonce
  tree.appendChild(style);
  tree.appendChild(root);
  document.body.appendChild(host);
  if (script.getAttribute("data-open") === "true") open();
}
if (document.body) start(); else document.addEventListener("DOMContentLoaded", start);
