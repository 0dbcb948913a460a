// The counsellor desk console, built on common.js. Everything that comes from the API is
// put on the page as text (textContent, text nodes), never parsed as HTML: people may write
// anything.
"use strict";

const POLL_MS = 3000;
const STATUS_EVERY = 10; // polls: the outbox line (and the team list) are refreshed every 30 s
const URGENCIES = { urgent: "Urgent", legal: "Legal", normal: "Normal" };
const SENDERS = { person: "Person", assistant: "Assistant", counsellor: "Counsellor" };
const FIELD_NAMES = { date: "Date", time: "Time" };
const FIELD_TYPES = { date: "date", time: "time" };
const MIN_PASSWORD = 10;

const state = {
  me: null, tickets: [], known: null, selected: null, detail: null, sending: new Set(), sendErrors: new Map(), epoch: 0,
  rows: new Map(), messages: new Map(), drafts: new Map(), sendKeys: new Map(), timer: 0, run: 0, polls: 0,
  gloss: "en", replies: { language: null, list: [] }, accounts: [], screen: "tickets",
};

class SignedOut extends Error {}

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

const api = makeApi({
  csrf: () => state.me && state.me.csrf_token,
  onSignedOut(path) {
    if (path === "/api/login") return; // a wrong password: the sign-in form says so
    if (state.me) showLogin("Your session has ended. Please sign in again.");
    throw new SignedOut();
  },
  onMustChange() {
    if (!state.me) return;
    // An administrator gave this account a temporary password: nothing else until it is changed.
    showPasswordChange();
    throw new SignedOut();
  },
});

// Views: signing in, choosing a new password, the desk.

function show(view) {
  for (const id of ["loading", "login-view", "password-view", "desk-view"]) $(id).hidden = id !== view;
  // The password form exists only while it is shown.
  if (view !== "password-view") $("password-view").replaceChildren();
}

function resetDesk() {
  state.run += 1;
  state.epoch += 1; // a reply still on its way is not told to whoever signs in next
  clearTimeout(state.timer);
  Object.assign(state, {
    tickets: [], known: null, selected: null, detail: null, accounts: [], screen: "tickets",
    replies: { language: null, list: [] },
  });
  state.rows.clear();
  state.drafts.clear();
  state.sendKeys.clear();
  state.sendErrors.clear();
  $("ticket-list").replaceChildren();
  $("ticket-list").setAttribute("aria-busy", "true");
  $("team-screen").replaceChildren();
  $("team-screen").hidden = true;
  $("tickets-screen").hidden = false;
  clearDetail("Select a ticket to read the conversation and answer.");
}

function showLogin(message = "") {
  resetDesk();
  state.me = null;
  show("login-view");
  $("login-error").textContent = message;
  $("password").value = "";
  $("username").focus();
}

function remember(me) {
  state.me = {
    username: me.username, languages: me.languages || [], csrf_token: me.csrf_token,
    role: ROLES[me.role] ? me.role : "counsellor",
  };
}

function enter(me) {
  remember(me);
  if (me.must_change_password) showPasswordChange();
  else if (state.me.role === "viewer") window.location.assign("/stats"); // statistics only
  else startDesk();
}

function showPasswordChange(wanted = false) {
  resetDesk();
  const view = $("password-view");
  view.replaceChildren($("password-template").content.cloneNode(true));
  $("password-who").textContent = state.me.username;
  $("password-username").value = state.me.username;
  if (wanted) { // their own choice, not a temporary password: they may go back
    $("password-why").textContent = ". Choose a new password.";
    $("password-back").hidden = false;
    $("password-back").addEventListener("click", () => startDesk());
  }
  show("password-view");
  $("password-form").addEventListener("submit", changePassword);
  $("password-logout").addEventListener("click", logOut);
  $("old-password").focus();
}

async function changePassword(event) {
  event.preventDefault();
  const old = $("old-password").value;
  const fresh = $("new-password").value;
  const error = $("password-error");
  let problem = "";
  if (!old) problem = "Enter your current (temporary) password.";
  else if (fresh.length < MIN_PASSWORD) problem = `The new password needs at least ${MIN_PASSWORD} characters.`;
  else if (fresh !== $("repeat-password").value) problem = "The two new passwords are not the same.";
  else if (fresh === old) problem = "The new password must differ from the current one.";
  error.textContent = problem;
  if (problem) return;
  $("password-button").disabled = true;
  try {
    const { status, data } = await api("POST", "/api/me/password", { old, new: fresh });
    if (status === 200) {
      const me = await api("GET", "/api/me");
      if (me.status === 200 && me.data && me.data.username && !me.data.must_change_password) {
        enter(me.data);
        announce("Your new password is saved.");
        return;
      }
      error.textContent = "The password was changed, but the desk did not answer. Reload the page.";
    } else if (status === 403) {
      error.textContent = "The current password is wrong.";
    } else {
      error.textContent = `Not changed: ${errorOf(data, status)}.`;
    }
  } catch (failure) {
    if (!(failure instanceof SignedOut)) error.textContent = "Cannot reach the desk. Try again.";
  } finally {
    if ($("password-button")) $("password-button").disabled = false;
  }
}

function startDesk() {
  const me = state.me;
  $("who").textContent = me.username;
  $("my-role").textContent = me.role === "admin" ? " (administrator)" : "";
  $("my-languages").textContent = `Languages: ${me.languages.join(", ") || "none"}`;
  $("my-languages").title = me.languages.map(languageName).join(", ");
  $("screens").hidden = me.role !== "admin";
  $("stats-link").hidden = me.role !== "admin" && me.role !== "viewer";
  $("assign-box").hidden = me.role !== "admin";
  state.gloss = chosenGloss(me.languages);
  $("gloss-language").value = state.gloss;
  show("desk-view");
  showScreen("tickets", false);
  $("problem").textContent = "";
  $("tickets-heading").focus();
  loadReplies().catch(() => null);
  if (me.role === "admin") loadAccounts().catch(() => null);
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
    if (status === 200 && data) enter(data);
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

// The two screens of an administrator: tickets and team.

function showScreen(screen, focus = true) {
  const team = screen === "team" && state.me && state.me.role === "admin";
  state.screen = team ? "team" : "tickets";
  $("tickets-screen").hidden = team;
  $("ticket-controls").hidden = team;
  $("team-screen").hidden = !team;
  for (const [id, active] of [["show-tickets", !team], ["show-team", team]]) {
    if (active) $(id).setAttribute("aria-current", "page");
    else $(id).removeAttribute("aria-current");
  }
  if (team) {
    if (!$("team-screen").firstChild) mountTeam();
    loadTeam().catch((failure) => {
      if (!(failure instanceof SignedOut)) $("team-error").textContent = "Cannot reach the desk. Try again.";
    });
    if (focus) $("team-heading").focus();
  } else {
    $("team-screen").replaceChildren();
    if (focus) $("tickets-heading").focus();
  }
}

// Polling: the list, and the open ticket, every few seconds.

function refreshNow() {
  clearTimeout(state.timer);
  state.run += 1;
  poll(state.run);
}

async function poll(run) {
  try {
    const every = state.polls++ % STATUS_EVERY === 0;
    await Promise.all([
      loadTickets(run),
      state.selected === null ? null : loadDetail(state.selected),
      every ? loadStatus() : null,
      every && state.polls > 1 && state.me && state.me.role === "admin" ? loadAccounts() : null,
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
  const query = `status=${encodeURIComponent(status)}&gloss=${encodeURIComponent(state.gloss)}`;
  const { ok, status: code, data } = await api("GET", `/api/tickets?${query}`);
  if (code === 403) await refreshMe(); // made a viewer meanwhile: off to the statistics
  if (!ok || !Array.isArray(data)) throw new Error("ticket list unavailable");
  if (run !== state.run) return;
  announceNew(data);
  state.tickets = data;
  renderList();
  $("ticket-list").setAttribute("aria-busy", "false");
}

// "My languages only" never hides an open urgent ticket: one in a language nobody on shift
// reads must still reach someone, who can call an interpreter or the emergency services.
const urgentOpen = (ticket) => ticket.urgency === "urgent" && ticket.status === "open";
const shown = (ticket) => !$("mine-only").checked || state.me.languages.includes(ticket.language)
  || urgentOpen(ticket);
const mine = (ticket) => Boolean(state.me) && ticket.assignee === state.me.username;

// New tickets, and those that became urgent (the person wrote about danger during the
// handoff), are announced; `known` holds each ticket's urgency as last seen.
function announceNew(tickets) {
  const seen = state.known;
  if (seen === null) {
    state.known = new Map(tickets.map((ticket) => [ticket.id, ticket.urgency]));
    return;
  }
  const open = tickets.filter((t) => t.status === "open" && shown(t));
  const news = [
    ...open.filter((t) => !seen.has(t.id))
      .map((t) => `New ticket: ${t.urgency}, ${languageName(t.language)}`),
    ...open.filter((t) => seen.has(t.id) && seen.get(t.id) !== "urgent" && t.urgency === "urgent")
      .map((t) => `Ticket #${t.id} is now urgent`),
  ];
  tickets.forEach((ticket) => seen.set(ticket.id, ticket.urgency));
  if (news.length) announce(news.join(". "));
}

// The ticket list: the tickets I hold first, then the desk's order (urgency, then age).

function holderText(ticket) {
  if (!ticket.assignee) return "Unclaimed";
  return mine(ticket) ? "Held by you" : `Held by ${ticket.assignee}`;
}

function renderList() {
  const list = $("ticket-list");
  const focused = list.contains(document.activeElement) ? document.activeElement.dataset.ticketId : null;
  const visible = state.tickets.filter(shown);
  const ordered = [...visible.filter(mine), ...visible.filter((ticket) => !mine(ticket))];
  const rows = new Map();
  for (const ticket of ordered) {
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
  const others = state.tickets.filter((ticket) => !shown(ticket) && ticket.status === "open").length;
  $("others-hidden").hidden = others === 0;
  $("others-count").textContent = others === 1
    ? "1 more open ticket is in a language not yours."
    : `${others} more open tickets are in languages not yours.`;
}

function fillRow(button, ticket) {
  const urgency = URGENCIES[ticket.urgency] ? ticket.urgency : "normal";
  const holder = !ticket.assignee ? "unclaimed" : mine(ticket) ? "mine" : "other";
  const parts = [
    el("span", { class: `badge ${urgency}` }, URGENCIES[ticket.urgency] || String(ticket.urgency)),
    el("span", { class: "number" }, `#${ticket.id}`),
    el("span", { class: "language" }, languageLabel(ticket.language)),
    el("span", { class: `row-holder ${holder}` }, holderText(ticket)),
    el("span", { class: "topic" }, String(ticket.topic_name || ticket.topic || "")),
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
  $("reply-error").textContent = state.sendErrors.get(id) || "";
  $("reply-text").value = state.drafts.get(id) || "";
  chooseReady("");
  renderList();
  loadDetail(id).catch((error) => {
    if (!(error instanceof SignedOut)) $("problem").textContent = "Cannot reach the desk. Retrying…";
  });
}

function clearDetail(message) {
  state.detail = null;
  state.messages.clear();
  $("messages").replaceChildren();
  $("history").replaceChildren();
  $("reply-error").textContent = "";
  $("ticket-error").textContent = "";
  $("detail").hidden = true;
  $("detail-empty").hidden = false;
  $("detail-empty").textContent = message;
}

async function loadDetail(id) {
  const gloss = state.gloss;
  const path = `/api/tickets/${encodeURIComponent(id)}?gloss=${encodeURIComponent(gloss)}`;
  const { status, ok, data } = await api("GET", path);
  if (id !== state.selected || gloss !== state.gloss) return;
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
    ["Topic", ticket.topic_name || ticket.topic],
    ["Opened", when(ticket.created_at)],
    ["Consent", `${when(ticket.consent_at)}, in ${languageLabel(ticket.consent_language)}`],
    ["Conversation", ticket.conversation_id],
  ];
  $("meta").replaceChildren(...fields.flatMap(([name, value]) => [
    el("dt", {}, name), el("dd", {}, String(value ?? "")),
  ]));
  renderHolder(ticket);
  if (ticket.messages) renderMessages(ticket.messages, ticket);
  if (ticket.history) renderHistory(ticket.history);
  const closed = ticket.status !== "open";
  $("closed-note").hidden = !closed;
  $("reply-text").disabled = closed;
  $("ready-reply").disabled = closed;
  $("send").disabled = closed || state.sending.has(ticket.id);
  $("close-ticket").disabled = closed;
  $("ready-note").textContent = `Sent in ${languageName(ticket.language)}, the person's language.`;
}

function renderHolder(ticket) {
  const open = ticket.status === "open";
  const holder = $("holder");
  const admin = state.me.role === "admin";
  if (!ticket.assignee) {
    holder.replaceChildren(open ? "Unclaimed. Claim it (key C) before answering; a reply also claims it." : "Nobody held it.");
  } else if (mine(ticket)) {
    holder.replaceChildren("Held by ", el("strong", {}, "you"), ".");
  } else {
    holder.replaceChildren("Held by ", el("strong", {}, ticket.assignee),
      open ? ": only they can answer or close it." : ".");
  }
  holder.dataset.assignee = ticket.assignee || "";
  // Held by someone else: the key C still tries, and says who holds it.
  $("claim").hidden = !open || Boolean(ticket.assignee);
  $("release").hidden = !open || !ticket.assignee || (!mine(ticket) && !admin);
  $("assign-box").hidden = !open || !admin;
  if (admin) fillAssign(ticket);
}

function fillAssign(ticket) {
  const select = $("assign-to");
  const chosen = select.value;
  const options = [el("option", { value: "" }, "Choose a counsellor")];
  for (const account of state.accounts) {
    if (account.disabled) continue;
    const speaks = account.languages.includes(ticket.language) ? "" : `, not ${ticket.language}`;
    const label = `${account.username} (${account.languages.join(", ")}${speaks})`;
    options.push(el("option", { value: account.username }, label));
  }
  const same = options.length === select.options.length
    && options.every((option, i) => select.options[i].value === option.value
      && select.options[i].text === option.text);
  if (!same) {
    select.replaceChildren(...options);
    if ([...select.options].some((option) => option.value === chosen)) select.value = chosen;
  }
}

const EVENTS = {
  claimed: () => "claimed the ticket",
  "made urgent": () => "marked it urgent: the person wrote about danger",
  released: (event) => (event.detail && event.detail !== event.actor ? `released it (${event.detail})` : "released it"),
  assigned: (event) => `assigned it to ${event.detail}`,
  replied: (event) => (event.detail ? `replied (${event.detail})` : "replied"),
  closed: () => "closed it and handed back to the assistant",
};

function historyItem(event) {
  const words = EVENTS[event.action]
    ? EVENTS[event.action](event)
    : `${event.action}${event.detail ? ` (${event.detail})` : ""}`;
  return el("li", { dataset: { action: String(event.action) } },
    el("time", { datetime: String(event.at) }, when(event.at)), " ",
    el("strong", { class: "actor" }, String(event.actor)), " ", String(words));
}

function renderHistory(history) {
  const list = $("history");
  const items = history.length ? history.map(historyItem) : [el("li", { class: "empty" }, "Nothing yet.")];
  const same = items.length === list.children.length
    && items.every((item, i) => list.children[i].textContent === item.textContent);
  if (!same) list.replaceChildren(...items);
}

function renderMessages(messages, ticket) {
  const box = $("messages");
  const first = state.messages.size === 0;
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 24;
  for (const message of messages) {
    const signature = [message.delivered, message.undeliverable, ticket.gloss_language].join("|");
    const old = state.messages.get(message.id);
    if (old && old.dataset.signature === signature) continue;
    const item = messageItem(message, ticket);
    item.dataset.signature = signature;
    if (old) old.replaceWith(item);
    else box.append(item);
    state.messages.set(message.id, item);
  }
  if (first || atBottom) box.scrollTop = box.scrollHeight;
}

function glossLine(message, ticket) {
  const reader = ticket.gloss_language || state.gloss;
  if (message.gloss) {
    return el("p", { class: "gloss", lang: reader, dir: "auto" },
      el("abbr", { class: "gloss-tag", title: `In ${GLOSS_LANGUAGES[reader] || reader}` }, reader.toUpperCase()),
      ": ",
      el("span", { class: "gloss-text" }, String(message.gloss)));
  }
  if (ticket.language === reader) return null; // already in the reader's language
  if (message.sender === "person") {
    return el("p", { class: "no-gloss" }, "Written by the person — no translation available");
  }
  if (message.sender === "assistant") {
    return el("p", { class: "no-gloss" }, "No translation available");
  }
  return null; // a counsellor's own free text
}

function understoodLine(message) {
  if (message.sender !== "person" || !message.topic) return null;
  const confidence = typeof message.confidence === "number"
    ? ` (${Math.round(message.confidence * 100)}%)` : "";
  return el("p", { class: "understood" },
    "Understood as: ", el("span", { class: "topic-name" }, String(message.topic)), confidence);
}

function messageItem(message, ticket) {
  const known = Object.prototype.hasOwnProperty.call(SENDERS, message.sender);
  const delivery = { true: "delivered", false: "queued" }[message.delivered];
  // Ready replies are in the person's language; a counsellor's free text may be in any.
  const lang = message.sender !== "counsellor" || message.content ? ticket.language : null;
  return el(
    "li",
    {
      class: `message ${known ? message.sender : "other"}`,
      dataset: {
        sender: String(message.sender), delivered: String(message.delivered), messageId: String(message.id),
      },
    },
    el("p", { class: "message-meta" },
      el("span", { class: "sender" }, known ? SENDERS[message.sender] : String(message.sender)),
      message.author ? el("span", { class: "author" }, ` · ${message.author}`) : null,
      " ",
      el("time", { datetime: String(message.at) }, when(message.at)),
      delivery ? el("span", { class: `delivery ${delivery}` }, delivery) : null,
      message.undeliverable
        ? el("span", { class: "undeliverable" }, ` · cannot be delivered: ${message.undeliverable}`) : null),
    el("p", { class: "text", dir: "auto", lang }, String(message.text)),
    glossLine(message, ticket),
    understoodLine(message),
  );
}

// Holding a ticket: claim, release, assign.

async function holdAction(verb, body) {
  const ticket = state.detail;
  if (!ticket || ticket.status !== "open") return;
  const error = $("ticket-error");
  error.textContent = "";
  const names = { claim: "Not claimed", release: "Not released", assign: "Not assigned" };
  try {
    const { ok, status, data } = await api("POST", `/api/tickets/${ticket.id}/${verb}`, body);
    if (!ok || !data) {
      error.textContent = `${names[verb]}: ${errorOf(data, status)}.`;
    } else {
      if (state.selected === ticket.id && state.detail) {
        state.detail = { ...state.detail, ...data };
        renderHolder(state.detail);
      }
      const news = { claim: `Ticket #${ticket.id} is yours.`, release: `Ticket #${ticket.id} released.` };
      announce(news[verb] || `Ticket #${ticket.id} assigned to ${data.assignee}.`);
    }
  } catch (failure) {
    if (failure instanceof SignedOut) return;
    error.textContent = `${names[verb]}: cannot reach the desk.`;
  }
  refreshNow();
}

function claimByKey(event) {
  if (typeof event.key !== "string" || event.key.toLowerCase() !== "c") return;
  if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
  if ($("desk-view").hidden || state.screen !== "tickets") return;
  const target = event.target;
  if (target instanceof Element
    && (target.closest("input, textarea, select, [contenteditable]") || target.isContentEditable)) return;
  const row = target instanceof Element ? target.closest("#ticket-list button.ticket") : null;
  if (row) select(Number(row.dataset.ticketId));
  if (state.selected === null) return;
  event.preventDefault();
  if (state.detail && state.detail.id === state.selected) {
    holdAction("claim");
  } else {
    // The ticket is still loading: claim it once it is there.
    const id = state.selected;
    loadDetail(id).then(() => { if (state.detail && state.detail.id === id) holdAction("claim"); })
      .catch(() => null);
  }
}

// Ready replies, in the reader's language; sent in the person's.

async function loadReplies() {
  const language = state.gloss;
  const { ok, data } = await api("GET", `/api/replies?language=${encodeURIComponent(language)}`);
  if (!ok || !Array.isArray(data) || language !== state.gloss) return;
  state.replies = { language, list: data };
  const select = $("ready-reply");
  const chosen = select.value;
  select.replaceChildren(
    el("option", { value: "" }, "None: write your own"),
    ...data.map((reply) => el("option", { value: reply.key, lang: language }, String(reply.text))),
  );
  const still = data.some((reply) => reply.key === chosen);
  select.value = still ? chosen : "";
  if (still) renderPreview();
  else chooseReady("");
}

const readyReply = () => state.replies.list.find((reply) => reply.key === $("ready-reply").value);

function chooseReady(key) {
  const select = $("ready-reply");
  if (select.value !== key) select.value = key;
  const reply = readyReply();
  $("ready-box").hidden = !reply;
  $("free-box").hidden = Boolean(reply);
  const fields = $("ready-fields");
  fields.replaceChildren();
  if (!reply) return;
  for (const name of reply.fields || []) {
    const id = `ready-field-${name}`;
    const input = el("input", {
      id, type: FIELD_TYPES[name] || "text", dataset: { field: name }, required: true, maxlength: "100",
    });
    input.addEventListener("input", renderPreview);
    const label = FIELD_NAMES[name] || name.charAt(0).toUpperCase() + name.slice(1).replace(/_/g, " ");
    fields.append(el("div", { class: "field" }, el("label", { for: id }, label), input));
  }
  renderPreview();
}

function readyValues() {
  const values = {};
  for (const input of $("ready-fields").querySelectorAll("input[data-field]")) {
    values[input.dataset.field] = input.value.trim();
  }
  return values;
}

function renderPreview() {
  const reply = readyReply();
  const preview = $("ready-preview");
  if (!reply) {
    preview.replaceChildren();
    return;
  }
  const values = readyValues();
  const parts = [];
  const pattern = /\{([A-Za-z0-9_]+)\}/g;
  let at = 0;
  for (const match of String(reply.text).matchAll(pattern)) {
    parts.push(reply.text.slice(at, match.index));
    const name = match[1];
    parts.push(values[name]
      ? el("mark", { class: "slot filled" }, values[name])
      : el("mark", { class: "slot" }, `[${(FIELD_NAMES[name] || name).toLowerCase()}]`));
    at = match.index + match[0].length;
  }
  parts.push(reply.text.slice(at));
  preview.setAttribute("lang", state.replies.language || "en");
  preview.replaceChildren(...parts);
}

// Answering and closing.

function newKey() {
  // crypto.randomUUID needs HTTPS or localhost; a desk on a LAN address may have neither.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

async function sendReply(event) {
  event.preventDefault();
  const ticket = state.detail;
  if (!ticket || ticket.status !== "open" || state.sending.has(ticket.id)) return;
  // The counsellor may answer another ticket meanwhile: this one's outcome is shown with
  // it, and announced if it is no longer the one on screen.
  const epoch = state.epoch;
  const tell = (text) => {
    if (epoch !== state.epoch) return;
    if (text) state.sendErrors.set(ticket.id, text);
    else state.sendErrors.delete(ticket.id);
    if (state.selected === ticket.id) $("reply-error").textContent = text;
    else if (text) announce(`Ticket #${ticket.id}: ${text}`);
  };
  const ready = readyReply();
  let body;
  if (ready) {
    const values = readyValues();
    const missing = (ready.fields || []).filter((name) => !values[name]);
    if (missing.length) {
      $("reply-error").textContent = `Fill in: ${missing.map((name) => (FIELD_NAMES[name] || name).toLowerCase()).join(", ")}.`;
      const input = $(`ready-field-${missing[0]}`);
      if (input) input.focus();
      return;
    }
    body = { reply_key: ready.key, values };
  } else {
    const text = $("reply-text").value.trim();
    if (!text) return;
    body = { text };
  }
  tell("");
  // One key per draft: sent again after an answer that never came (the desk restarting, a
  // proxy's 502), the same reply is taken once, not twice.
  const draft = JSON.stringify(body);
  let sending = state.sendKeys.get(ticket.id);
  if (!sending || sending.draft !== draft) {
    sending = { draft, key: newKey() };
    state.sendKeys.set(ticket.id, sending);
  }
  body.idempotency_key = sending.key;
  state.sending.add(ticket.id);
  $("send").disabled = true;
  const unknown = " It may have been sent: press Send again, it will not go twice.";
  try {
    const { status, data } = await api("POST", `/api/tickets/${ticket.id}/messages`, body);
    if (status === 201) {
      state.sendKeys.delete(ticket.id);
      if (state.selected === ticket.id) {
        if (ready) chooseReady("");
        else $("reply-text").value = "";
      }
      if (!ready) state.drafts.delete(ticket.id);
      const to = state.selected === ticket.id ? "" : ` to ticket #${ticket.id}`;
      if (epoch === state.epoch) announce(data && data.delivered ? `Reply${to} sent.` : `Reply${to} kept; it goes out when the assistant takes it.`);
    } else if (status >= 500) {
      tell(`Not confirmed: ${errorOf(data, status)}.${unknown}`);
    } else {
      state.sendKeys.delete(ticket.id);
      const kept = ready ? "" : " Your text is kept.";
      tell(`Not sent: ${errorOf(data, status)}.${kept}`);
    }
    if (state.selected === ticket.id) await loadDetail(ticket.id);
  } catch (failure) {
    if (!(failure instanceof SignedOut)) tell(`Not confirmed: cannot reach the desk.${unknown}`);
  } finally {
    state.sending.delete(ticket.id);
    if (state.detail) $("send").disabled = state.detail.status !== "open" || state.sending.has(state.detail.id);
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
      $("reply-error").textContent = `Not closed: ${errorOf(data, status)}.`;
      return;
    }
    if (state.selected === ticket.id) {
      renderDetail({ ...ticket, ...data });
      $("closed-note").focus();
    }
    announce(`Ticket #${ticket.id} closed and handed back to the assistant.`);
    refreshNow();
  } catch (failure) {
    if (!(failure instanceof SignedOut)) $("reply-error").textContent = "Not closed: cannot reach the desk.";
  }
}

function changeGloss() {
  const chosen = $("gloss-language").value;
  if (!GLOSS_LANGUAGES[chosen] || chosen === state.gloss) return;
  state.gloss = chosen;
  storage.set(GLOSS_KEY, chosen);
  state.messages.clear();
  $("messages").replaceChildren();
  loadReplies().catch(() => null);
  refreshNow();
}

// The team (administrators).

function languageChoices(prefix) {
  // One checkbox per language, labelled "Pashto (ps)".
  return Object.entries(LANGUAGES).map(([code, name]) => {
    const id = `${prefix}-${code}`;
    return el("span", { class: "language-choice" },
      el("input", { id, type: "checkbox", value: code }),
      el("label", { for: id }, `${name} (${code})`));
  });
}

function mountTeam() {
  const screen = $("team-screen");
  screen.replaceChildren($("team-template").content.cloneNode(true));
  $("new-languages").append(...languageChoices("new-language"));
  $("add-form").addEventListener("submit", addAccount);
  $("show-temporary").addEventListener("change", (event) => {
    $("new-temporary").type = event.target.checked ? "text" : "password";
  });
  $("account-rows").addEventListener("click", accountAction);
  $("reset-form").addEventListener("submit", resetPassword);
  $("reset-cancel").addEventListener("click", () => { $("reset-form").hidden = true; });
  $("edit-languages").append(...languageChoices("edit-language"));
  $("edit-form").addEventListener("submit", saveAccount);
  $("edit-cancel").addEventListener("click", () => { $("edit-form").hidden = true; });
}

function editAccount(username) {
  const account = (state.accounts || []).find((a) => a.username === username);
  if (!account) return;
  $("edit-heading").textContent = `Languages and role of ${username}`;
  $("edit-form").dataset.username = username;
  for (const box of $("edit-languages").querySelectorAll("input")) {
    box.checked = account.languages.includes(box.value);
  }
  $("edit-role").value = account.role;
  $("edit-form").hidden = false;
  $("edit-languages").querySelector("input").focus();
}

async function saveAccount(event) {
  event.preventDefault();
  const username = $("edit-form").dataset.username;
  const languages = [...$("edit-languages").querySelectorAll("input:checked")].map((box) => box.value);
  if (!languages.length) {
    teamMessage("", "Choose at least one language.");
    return;
  }
  const role = $("edit-role").value;
  const saved = await teamRequest("PATCH", `/api/counsellors/${encodeURIComponent(username)}`,
    { languages, role }, (data) => `${data.username}: ${data.languages.join(", ")}; ${ROLES[data.role] || data.role}.`);
  if (saved && $("edit-form")) $("edit-form").hidden = true;
  if (saved && username === state.me.username) await refreshMe();
}

async function loadAccounts() {
  const { ok, status, data } = await api("GET", "/api/counsellors");
  if (status === 403) {
    // No longer an administrator (another one changed the role): the screens follow.
    await refreshMe();
    return [];
  }
  if (!ok || !Array.isArray(data)) throw new Error("accounts unavailable");
  state.accounts = data;
  if (state.detail && state.me.role === "admin") fillAssign(state.detail);
  return data;
}

async function loadTeam() {
  const [accounts, history] = await Promise.all([
    loadAccounts(), api("GET", "/api/counsellors/history"),
  ]);
  if (state.screen !== "team" || !$("account-rows")) return;
  renderAccounts(accounts);
  if (history.ok && Array.isArray(history.data)) renderAccountHistory(history.data);
  $("accounts").setAttribute("aria-busy", "false");
}

function accountButton(action, text, username, secondary = true) {
  return el("button", { type: "button", class: secondary ? "secondary small" : "small", dataset: { action, username } },
    text, el("span", { class: "visually-hidden" }, ` ${username}`));
}

function renderAccounts(accounts) {
  const rows = accounts.map((account) => {
    const self = account.username === state.me.username;
    const status = [account.disabled ? "Disabled" : "Active"];
    if (account.must_change_password) status.push("temporary password");
    const actions = [
      account.role === "admin"
        ? accountButton("make-counsellor", "Make counsellor", account.username)
        : accountButton("make-admin", "Make administrator", account.username),
      self ? null : account.disabled
        ? accountButton("enable", "Enable", account.username)
        : accountButton("disable", "Disable", account.username),
      accountButton("edit", "Languages and role", account.username),
      accountButton("reset", "Reset password", account.username),
    ];
    return el("tr", { dataset: { username: account.username }, class: account.disabled ? "disabled" : null },
      el("th", { scope: "row" }, account.username, self ? el("span", { class: "you" }, " (you)") : null),
      el("td", { class: "account-languages" }, account.languages.join(", ")),
      el("td", { class: "role" }, ROLES[account.role] || String(account.role)),
      el("td", { class: "account-status" }, status.join(", ")),
      el("td", { class: "row-actions" }, ...actions));
  });
  $("account-rows").replaceChildren(...rows);
}

const ACCOUNT_EVENTS = {
  "account added": "added", "account changed": "changed", "account disabled": "disabled",
  "account enabled": "enabled", "password reset": "reset the password of", "password changed": "changed their password",
};

function renderAccountHistory(events) {
  const items = events.slice(0, 30).map((event) => el("li", { dataset: { action: String(event.action) } },
    el("time", { datetime: String(event.at) }, when(event.at)), " ",
    el("strong", { class: "actor" }, String(event.actor)), " ",
    event.action === "password changed"
      ? "changed their password"
      : `${ACCOUNT_EVENTS[event.action] || event.action} ${event.detail}`));
  $("account-history").replaceChildren(...(items.length ? items : [el("li", { class: "empty" }, "Nothing yet.")]));
}

function teamMessage(status, error) {
  $("team-status").textContent = status || "";
  $("team-error").textContent = error || "";
  if (status) announce(status);
}

async function teamRequest(method, path, body, done) {
  teamMessage("", "");
  try {
    const { ok, status, data } = await api(method, path, body);
    if (ok) {
      teamMessage(done(data), "");
      await loadTeam();
      return true;
    }
    teamMessage("", `${errorOf(data, status)}.`.replace(/^./, (c) => c.toUpperCase()));
  } catch (failure) {
    if (!(failure instanceof SignedOut)) teamMessage("", "Cannot reach the desk. Try again.");
  }
  return false;
}

async function addAccount(event) {
  event.preventDefault();
  const username = $("new-username").value.trim();
  const password = $("new-temporary").value;
  const languages = [...$("new-languages").querySelectorAll("input:checked")].map((box) => box.value);
  const role = $("new-role").value;
  let problem = "";
  if (!/^[a-z0-9][a-z0-9._-]{1,63}$/.test(username)) {
    problem = "The username needs 2–64 lower-case letters, digits, “.”, “_” or “-”.";
  } else if (password.length < MIN_PASSWORD) {
    problem = `The temporary password needs at least ${MIN_PASSWORD} characters.`;
  } else if (!languages.length) {
    problem = "Choose at least one language.";
  }
  if (problem) {
    teamMessage("", problem);
    return;
  }
  $("add-button").disabled = true;
  const added = await teamRequest("POST", "/api/counsellors", { username, password, languages, role },
    (data) => `${data.username} added (${ROLES[data.role] || data.role}). Give them the temporary password.`);
  if ($("add-button")) $("add-button").disabled = false;
  if (added) {
    $("add-form").reset();
    $("new-temporary").type = "password";
  }
}

async function accountAction(event) {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const { action, username } = button.dataset;
  const path = `/api/counsellors/${encodeURIComponent(username)}`;
  if (action === "edit") {
    editAccount(username);
    return;
  }
  if (action === "reset") {
    $("reset-heading").textContent = `New temporary password for ${username}`;
    $("reset-form").dataset.username = username;
    $("reset-username").value = username;
    $("reset-password").value = "";
    $("reset-form").hidden = false;
    $("reset-password").focus();
    return;
  }
  if (action === "make-admin" || action === "make-counsellor") {
    const role = action === "make-admin" ? "admin" : "counsellor";
    const changed = await teamRequest("PATCH", path, { role },
      (data) => `${data.username} is now ${role === "admin" ? "an administrator" : "a counsellor"}.`);
    if (changed && username === state.me.username) await refreshMe();
    return;
  }
  if (action === "disable" && !window.confirm(`Disable ${username}? They are signed out at once and their tickets are released.`)) return;
  await teamRequest("POST", `${path}/${action}`, undefined,
    (data) => `${data.username} is ${data.disabled ? "disabled" : "enabled"}.`);
}

async function resetPassword(event) {
  event.preventDefault();
  const username = $("reset-form").dataset.username;
  const password = $("reset-password").value;
  if (password.length < MIN_PASSWORD) {
    teamMessage("", `The temporary password needs at least ${MIN_PASSWORD} characters.`);
    return;
  }
  const done = await teamRequest("POST", `/api/counsellors/${encodeURIComponent(username)}/password`,
    { password }, (data) => `${data.username} has a new temporary password and must change it at the next sign-in.`);
  if (done && $("reset-form")) $("reset-form").hidden = true;
}

async function refreshMe() {
  // An administrator who made themselves a counsellor: their screens change with it.
  const { status, data } = await api("GET", "/api/me");
  if (status === 200 && data && data.username && state.me
      && (data.role !== state.me.role || String(data.languages) !== String(state.me.languages))) {
    remember(data);
    if (state.me.role === "viewer") window.location.assign("/stats"); // statistics only
    else startDesk();
  }
}

async function boot() {
  $("login-form").addEventListener("submit", logIn);
  $("logout").addEventListener("click", logOut);
  $("change-password").addEventListener("click", () => showPasswordChange(true));
  $("mine-only").addEventListener("change", renderList);
  $("show-others").addEventListener("click", () => {
    $("mine-only").checked = false;
    renderList();
  });
  $("status-filter").addEventListener("change", () => {
    $("ticket-list").setAttribute("aria-busy", "true");
    refreshNow();
  });
  $("gloss-language").addEventListener("change", changeGloss);
  $("show-tickets").addEventListener("click", () => showScreen("tickets"));
  $("show-team").addEventListener("click", () => showScreen("team"));
  $("ticket-list").addEventListener("click", (event) => {
    const button = event.target.closest("button.ticket");
    if (button) select(Number(button.dataset.ticketId));
  });
  $("ticket-list").addEventListener("keydown", moveFocus);
  document.addEventListener("keydown", claimByKey);
  $("claim").addEventListener("click", () => holdAction("claim"));
  $("release").addEventListener("click", () => holdAction("release"));
  $("assign").addEventListener("click", () => {
    const username = $("assign-to").value;
    if (!username) {
      $("ticket-error").textContent = "Choose a counsellor to assign the ticket to.";
      $("assign-to").focus();
      return;
    }
    holdAction("assign", { username });
  });
  $("ready-reply").addEventListener("change", (event) => chooseReady(event.target.value));
  $("reply-form").addEventListener("submit", sendReply);
  $("reply-form").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      $("reply-form").requestSubmit();
    }
  });
  $("close-ticket").addEventListener("click", closeTicket);
  try {
    const { status, data } = await api("GET", "/api/me");
    if (status === 200 && data && data.username) enter(data);
    else if (status === 403 && data && data.must_change_password) {
      // A temporary password, and the page was reloaded: signing in again leads to the form.
      showLogin("Sign in again to choose your new password.");
    } else showLogin();
  } catch (error) {
    showLogin(error instanceof SignedOut ? "" : "Cannot reach the desk. Reload the page to try again.");
  }
}

boot();
