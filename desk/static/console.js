// The counsellor desk console. Everything that comes from the API is put on the page as
// text (textContent, text nodes), never parsed as HTML: people may write anything.
"use strict";

const POLL_MS = 3000;
const STATUS_EVERY = 10; // polls: the outbox line is refreshed every 30 s
const LANGUAGES = {
  en: "English", hu: "Hungarian", ar: "Arabic", fa: "Persian", ps: "Pashto", ur: "Urdu",
  sq: "Albanian", ru: "Russian", uk: "Ukrainian", tr: "Turkish", fr: "French", vi: "Vietnamese",
};
const URGENCIES = { urgent: "Urgent", legal: "Legal", normal: "Normal" };
const SENDERS = { person: "Person", assistant: "Assistant", counsellor: "Counsellor" };

const state = {
  me: null, tickets: [], known: null, selected: null, detail: null, sending: false,
  rows: new Map(), messages: new Map(), drafts: new Map(), timer: 0, run: 0, polls: 0,
};

class SignedOut extends Error {}

const $ = (id) => document.getElementById(id);

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

const languageName = (code) => LANGUAGES[code] || code;
const languageLabel = (code) => (LANGUAGES[code] ? `${code} · ${LANGUAGES[code]}` : code);

function age(iso) {
  const minutes = Math.max(0, Math.floor((Date.now() - Date.parse(iso)) / 60000));
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours} h ${minutes % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

function when(iso) {
  const moment = new Date(iso);
  if (Number.isNaN(moment.getTime())) return String(iso);
  const today = moment.toDateString() === new Date().toDateString();
  return moment.toLocaleString("en-GB", today
    ? { hour: "2-digit", minute: "2-digit" }
    : { day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit" });
}

function announce(text) {
  // Emptied first so that the same words twice in a row are read out twice.
  $("announcer").textContent = "";
  setTimeout(() => { $("announcer").textContent = text; }, 100);
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && state.me) headers["X-CSRF-Token"] = state.me.csrf_token;
  const response = await fetch(path, {
    method, headers, credentials: "same-origin", cache: "no-store",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 && path !== "/api/login") {
    if (state.me) showLogin("Your session has ended. Please sign in again.");
    throw new SignedOut();
  }
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  return { status: response.status, ok: response.ok, data };
}

// Signing in and out.

function show(view) {
  for (const id of ["loading", "login-view", "desk-view"]) $(id).hidden = id !== view;
}

function showLogin(message = "") {
  state.run += 1;
  clearTimeout(state.timer);
  Object.assign(state, { me: null, tickets: [], known: null, selected: null, detail: null });
  state.rows.clear();
  state.drafts.clear();
  $("ticket-list").replaceChildren();
  $("ticket-list").setAttribute("aria-busy", "true");
  clearDetail("Select a ticket to read the conversation and answer.");
  show("login-view");
  $("login-error").textContent = message;
  $("password").value = "";
  $("username").focus();
}

function startDesk(me) {
  state.me = { username: me.username, languages: me.languages || [], csrf_token: me.csrf_token };
  $("who").textContent = me.username;
  $("my-languages").textContent = `Languages: ${state.me.languages.map(languageLabel).join(", ") || "none"}`;
  show("desk-view");
  $("problem").textContent = "";
  $("tickets-heading").focus();
  refreshNow();
}

async function logIn(event) {
  event.preventDefault();
  const username = $("username").value.trim();
  const password = $("password").value;
  const error = $("login-error");
  if (!username || !password) {
    error.textContent = "Enter your username and password.";
    return;
  }
  $("login-button").disabled = true;
  error.textContent = "";
  try {
    const { status, data } = await api("POST", "/api/login", { username, password });
    if (status === 200 && data) startDesk(data);
    else if (status === 401) error.textContent = "Wrong username or password.";
    else if (status === 429) error.textContent = "Too many failed attempts. Wait a few minutes, then try again.";
    else error.textContent = `Sign-in failed (error ${status}).`;
  } catch {
    error.textContent = "Cannot reach the desk. Try again.";
  } finally {
    $("login-button").disabled = false;
  }
}

async function logOut() {
  // Signed out here even if the desk cannot be reached: the session then expires there.
  await api("POST", "/api/logout").catch(() => null);
  showLogin("You have signed out.");
}

// Polling: the list, and the open ticket, every few seconds.

function refreshNow() {
  clearTimeout(state.timer);
  state.run += 1;
  poll(state.run);
}

async function poll(run) {
  try {
    await Promise.all([
      loadTickets(run),
      state.selected === null ? null : loadDetail(state.selected),
      state.polls++ % STATUS_EVERY === 0 ? loadStatus() : null,
    ]);
    if (run === state.run) $("problem").textContent = "";
  } catch (error) {
    if (error instanceof SignedOut) return;
    if (run === state.run) $("problem").textContent = "Cannot reach the desk. Retrying…";
  }
  if (run === state.run) state.timer = setTimeout(poll, POLL_MS, run);
}

// Requests from the assistant that never reached the desk are tickets or messages that
// counsellors cannot see: say so on every screen until an operator has dealt with them.
async function loadStatus() {
  const { ok, data } = await api("GET", "/api/status");
  const line = $("outbox-problem");
  let text = "";
  if (ok && data && data.outbox && data.outbox.dead > 0) {
    const n = data.outbox.dead;
    text = `${n} request${n === 1 ? "" : "s"} from the assistant (tickets, messages or deletions) ` +
      "could not be delivered to the desk. An operator must look at them: python -m actions.outbox";
  } else if (ok && data && data.outbox === null && data.reason === "the action server is unreachable") {
    text = "The assistant's action server cannot be reached: new tickets may be delayed.";
  }
  line.textContent = text;
  line.hidden = text === "";
}

async function loadTickets(run) {
  const status = $("status-filter").value;
  const { ok, data } = await api("GET", `/api/tickets?status=${encodeURIComponent(status)}`);
  if (!ok || !Array.isArray(data)) throw new Error("ticket list unavailable");
  if (run !== state.run) return;
  announceNew(data);
  state.tickets = data;
  renderList();
  $("ticket-list").setAttribute("aria-busy", "false");
}

const shown = (ticket) => !$("mine-only").checked || state.me.languages.includes(ticket.language);

function announceNew(tickets) {
  if (state.known === null) {
    state.known = new Set(tickets.map((ticket) => ticket.id));
    return;
  }
  const fresh = tickets.filter((t) => !state.known.has(t.id) && t.status === "open" && shown(t));
  tickets.forEach((ticket) => state.known.add(ticket.id));
  if (fresh.length) {
    announce(fresh.map((t) => `New ticket: ${t.urgency}, ${languageName(t.language)}`).join(". "));
  }
}

// The ticket list.

function renderList() {
  const list = $("ticket-list");
  const focused = list.contains(document.activeElement) ? document.activeElement.dataset.ticketId : null;
  const visible = state.tickets.filter(shown);
  const rows = new Map();
  for (const ticket of visible) {
    const row = state.rows.get(ticket.id)
      || el("li", {}, el("button", { type: "button", class: "ticket", dataset: { ticketId: ticket.id } }));
    fillRow(row.firstChild, ticket);
    rows.set(ticket.id, row);
  }
  state.rows = rows;
  const order = [...rows.values()];
  if (order.length !== list.children.length || order.some((row, i) => list.children[i] !== row)) {
    list.replaceChildren(...order);
    const again = order.find((row) => row.firstChild.dataset.ticketId === focused);
    if (again) again.firstChild.focus();
  }
  const status = $("status-filter");
  $("tickets-title").textContent = `${status.options[status.selectedIndex].text} tickets`;
  $("ticket-count").textContent = `(${visible.length})`;
  $("list-empty").hidden = visible.length > 0;
}

function fillRow(button, ticket) {
  const urgency = URGENCIES[ticket.urgency] ? ticket.urgency : "normal";
  const parts = [
    el("span", { class: `badge ${urgency}` }, URGENCIES[ticket.urgency] || String(ticket.urgency)),
    el("span", { class: "number" }, `#${ticket.id}`),
    el("span", { class: "language" }, languageLabel(ticket.language)),
    el("span", { class: "channel" }, ticket.channel),
    el("span", { class: "age", title: `Opened ${when(ticket.created_at)}` }, age(ticket.created_at)),
    ticket.waiting ? el("span", { class: "waiting" }, "Waiting") : null,
    ticket.status === "closed" ? el("span", { class: "closed" }, "Closed") : null,
  ];
  button.replaceChildren(...parts.filter(Boolean));
  if (ticket.id === state.selected) button.setAttribute("aria-current", "true");
  else button.removeAttribute("aria-current");
}

function moveFocus(event) {
  const buttons = [...$("ticket-list").querySelectorAll("button.ticket")];
  const at = buttons.indexOf(document.activeElement);
  const target = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: buttons.length - 1 }[event.key];
  if (target === undefined || at < 0 || !buttons.length) return;
  event.preventDefault();
  buttons[Math.max(0, Math.min(buttons.length - 1, target))].focus();
}

// The selected ticket.

function select(id) {
  if (state.selected === id) return;
  if (state.selected !== null) state.drafts.set(state.selected, $("reply-text").value);
  state.selected = id;
  clearDetail("Loading ticket…");
  $("reply-text").value = state.drafts.get(id) || "";
  renderList();
  loadDetail(id).catch((error) => {
    if (!(error instanceof SignedOut)) $("problem").textContent = "Cannot reach the desk. Retrying…";
  });
}

function clearDetail(message) {
  state.detail = null;
  state.messages.clear();
  $("messages").replaceChildren();
  $("reply-error").textContent = "";
  $("detail").hidden = true;
  $("detail-empty").hidden = false;
  $("detail-empty").textContent = message;
}

async function loadDetail(id) {
  const { status, ok, data } = await api("GET", `/api/tickets/${encodeURIComponent(id)}`);
  if (id !== state.selected) return;
  if (status === 404) {
    state.selected = null;
    clearDetail(`Ticket #${id} no longer exists.`);
    return;
  }
  if (!ok || !data) throw new Error("ticket unavailable");
  renderDetail(data);
}

function renderDetail(ticket) {
  state.detail = ticket;
  $("detail-empty").hidden = true;
  $("detail").hidden = false;
  $("detail-heading").textContent = `Ticket #${ticket.id}`;
  const fields = [
    ["Status", ticket.status === "open" ? "Open" : "Closed"],
    ["Urgency", URGENCIES[ticket.urgency] || String(ticket.urgency)],
    ["Language", languageLabel(ticket.language)],
    ["Channel", ticket.channel],
    ["Topic", ticket.topic],
    ["Opened", when(ticket.created_at)],
    ["Consent", `${when(ticket.consent_at)}, in ${languageLabel(ticket.consent_language)}`],
    ["Conversation", ticket.conversation_id],
  ];
  $("meta").replaceChildren(...fields.flatMap(([name, value]) => [
    el("dt", {}, name), el("dd", {}, String(value ?? "")),
  ]));
  renderMessages(ticket.messages || []);
  const closed = ticket.status !== "open";
  $("closed-note").hidden = !closed;
  $("reply-text").disabled = closed;
  $("send").disabled = closed || state.sending;
  $("close-ticket").disabled = closed;
}

function renderMessages(messages) {
  const box = $("messages");
  const first = state.messages.size === 0;
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 24;
  for (const message of messages) {
    const old = state.messages.get(message.id);
    if (old && old.dataset.delivered === String(message.delivered)) continue;
    const item = messageItem(message);
    if (old) old.replaceWith(item);
    else box.append(item);
    state.messages.set(message.id, item);
  }
  if (first || atBottom) box.scrollTop = box.scrollHeight;
}

function messageItem(message) {
  const known = Object.prototype.hasOwnProperty.call(SENDERS, message.sender);
  const delivery = { true: "delivered", false: "queued" }[message.delivered];
  return el(
    "li",
    {
      class: `message ${known ? message.sender : "other"}`,
      dataset: { sender: String(message.sender), delivered: String(message.delivered) },
    },
    el("p", { class: "message-meta" },
      el("span", { class: "sender" }, known ? SENDERS[message.sender] : String(message.sender)),
      " ",
      el("time", { datetime: String(message.at) }, when(message.at)),
      delivery ? el("span", { class: `delivery ${delivery}` }, delivery) : null),
    el("p", { class: "text", dir: "auto" }, String(message.text)),
  );
}

async function sendReply(event) {
  event.preventDefault();
  const box = $("reply-text");
  const text = box.value.trim();
  const ticket = state.detail;
  if (!text || state.sending || !ticket || ticket.status !== "open") return;
  const error = $("reply-error");
  error.textContent = "";
  state.sending = true;
  $("send").disabled = true;
  try {
    const { status, data } = await api("POST", `/api/tickets/${ticket.id}/messages`, { text });
    if (status === 201) {
      if (state.selected === ticket.id) box.value = "";
      state.drafts.delete(ticket.id);
    } else if (status === 409) {
      error.textContent = "This ticket is closed: the reply was not sent.";
    } else {
      error.textContent = `Not sent: ${(data && data.error) || `error ${status}`}.`;
    }
    if (state.selected === ticket.id) await loadDetail(ticket.id);
  } catch (failure) {
    if (!(failure instanceof SignedOut)) error.textContent = "Not sent: cannot reach the desk. Your text is kept.";
  } finally {
    state.sending = false;
    if (state.detail) $("send").disabled = state.detail.status !== "open";
  }
}

async function closeTicket() {
  const ticket = state.detail;
  if (!ticket || ticket.status !== "open") return;
  const question = `Close ticket #${ticket.id} and hand the conversation back to the assistant? `
    + "The assistant will tell the person.";
  if (!window.confirm(question)) return;
  try {
    const { ok, status, data } = await api("POST", `/api/tickets/${ticket.id}/close`);
    if (!ok || !data) {
      $("reply-error").textContent = `Not closed: ${(data && data.error) || `error ${status}`}.`;
      return;
    }
    if (state.selected === ticket.id) {
      renderDetail({ ...data, messages: ticket.messages });
      $("closed-note").focus();
    }
    announce(`Ticket #${ticket.id} closed and handed back to the assistant.`);
    refreshNow();
  } catch (failure) {
    if (!(failure instanceof SignedOut)) $("reply-error").textContent = "Not closed: cannot reach the desk.";
  }
}

async function boot() {
  $("login-form").addEventListener("submit", logIn);
  $("logout").addEventListener("click", logOut);
  $("mine-only").addEventListener("change", renderList);
  $("status-filter").addEventListener("change", () => {
    $("ticket-list").setAttribute("aria-busy", "true");
    refreshNow();
  });
  $("ticket-list").addEventListener("click", (event) => {
    const button = event.target.closest("button.ticket");
    if (button) select(Number(button.dataset.ticketId));
  });
  $("ticket-list").addEventListener("keydown", moveFocus);
  $("reply-form").addEventListener("submit", sendReply);
  $("reply-text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      $("reply-form").requestSubmit();
    }
  });
  $("close-ticket").addEventListener("click", closeTicket);
  try {
    const { status, data } = await api("GET", "/api/me");
    if (status === 200 && data && data.username) startDesk(data);
    else showLogin();
  } catch (error) {
    showLogin(error instanceof SignedOut ? "" : "Cannot reach the desk. Reload the page to try again.");
  }
}

boot();
