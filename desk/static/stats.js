// The programme's statistics, for administrators and viewers, built on common.js. Everything
// that comes from the API is put on the page as text (textContent, text nodes), never parsed
// as HTML: the unanswered questions are what people wrote.
"use strict";

// What is counted per language: the counsellors' languages, and what the assistant could
// not tell the language of.
const COUNTED_LANGUAGES = { ...LANGUAGES, unknown: "Unknown" };
const OUTCOMES = { likely: "likely eligible", fear: "afraid to return", counsellor_first: "counsellor first" };
const CHARTS = [
  { name: "conversations", title: "Conversations per day, by language" },
  { name: "fallback", title: "Messages not understood, % per language" },
  { name: "topics", title: "Top topics" },
  { name: "handoffs", title: "Tickets per day, and the median wait for a counsellor" },
];
const NONE = "—";

const state = { me: null, period: null, stats: null, intents: null, run: 0 };

class Stopped extends Error {}

const languageName = (code) => COUNTED_LANGUAGES[code] || String(code);

// Numbers as the page shows them: whole counts with thousands separators, shares and
// minutes with one decimal (halves rounded up).
const count = (value) => Number(value || 0).toLocaleString("en-GB");
const oneDecimal = (value) => (Math.round(value * 10) / 10).toFixed(1);
const share = (part, whole) => (whole ? `${oneDecimal((100 * (part || 0)) / whole)}%` : NONE);
const minutes = (seconds) => (seconds === null || seconds === undefined ? NONE : `${oneDecimal(seconds / 60)} min`);

const api = makeApi({
  csrf: () => state.me && state.me.csrf_token,
  onSignedOut() {
    gate(state.me ? "Your session has ended. Sign in again on the counsellor desk." : "You are not signed in.",
      "Sign in on the counsellor desk");
    throw new Stopped();
  },
  onMustChange() {
    gatePassword();
    throw new Stopped();
  },
});

// What is shown instead of the statistics.

function gate(message, link, signOut = false) {
  state.run += 1;
  state.me = null;
  $("loading").hidden = true;
  $("stats-view").hidden = true;
  $("gate").hidden = false;
  $("gate-message").textContent = message;
  $("gate-link").textContent = link;
  $("gate-logout").hidden = !signOut;
  $("gate-link").focus();
}

function gatePassword() {
  gate("You signed in with a temporary password: choose your own on the counsellor desk first.",
    "Go to the counsellor desk");
}

function gateNoAccess(role) {
  const what = role === "counsellor" ? "a counsellor's account" : "this account";
  gate(`You have no access to the statistics: they are for administrators and viewers, and you are signed in with ${what}. `
    + "Ask an administrator if you need them.", "Back to the counsellor desk", true);
}

async function logOut() {
  await api("POST", "/api/logout").catch(() => null);
  gate("You have signed out.", "Sign in on the counsellor desk");
}

// The period: ?from=&to= in the address, else the desk's default (the last 30 days).

function periodQuery(period) {
  if (!period) return "";
  return `from=${encodeURIComponent(period.from)}&to=${encodeURIComponent(period.to)}`;
}

function askedPeriod() {
  const query = new URLSearchParams(window.location.search);
  const from = query.get("from");
  const to = query.get("to");
  return from && to ? { from, to } : null;
}

function showPeriod(event) {
  event.preventDefault();
  const from = $("from").value;
  const to = $("to").value;
  let problem = "";
  if (!from || !to) problem = "Choose both days of the period.";
  else if (from > to) problem = "The first day comes after the last one.";
  $("problem").textContent = problem;
  if (problem) {
    (from ? $("to") : $("from")).focus();
    return;
  }
  const period = { from, to };
  window.history.replaceState(null, "", `/stats?${periodQuery(period)}`);
  loadStats(period).catch(failed);
}

function failed(failure) {
  if (failure instanceof Stopped) return;
  $("problem").textContent = "Cannot reach the desk. Try again.";
}

async function loadStats(period) {
  const run = ++state.run;
  $("summary-section").setAttribute("aria-busy", "true");
  $("status").textContent = "";
  const query = periodQuery(period);
  const { ok, status, data } = await api("GET", `/api/stats${query ? `?${query}` : ""}`);
  if (run !== state.run) return;
  if (status === 403) {
    gateNoAccess(state.me && state.me.role);
    return;
  }
  if (!ok || !data || !data.totals) {
    $("problem").textContent = `The statistics cannot be shown: ${errorOf(data, status)}.`;
    $("summary-section").setAttribute("aria-busy", "false");
    return;
  }
  $("problem").textContent = "";
  state.stats = data;
  state.period = { from: data.from, to: data.to };
  $("from").value = data.from;
  $("to").value = data.to;
  render(data);
  $("summary-section").setAttribute("aria-busy", "false");
}

// Rendering.

function render(stats) {
  const query = periodQuery(state.period);
  $("period-label").textContent = `${stats.from} to ${stats.to}`;
  $("csv-link").href = `/api/stats.csv?${query}`;
  $("csv-link").setAttribute("download", `avrr-stats-${stats.from}-${stats.to}.csv`);
  renderSummary(stats);
  const smallest = stats.smallest_count_shown;
  $("small-counts").hidden = !smallest;
  $("small-counts").textContent = smallest
    ? `Counts under ${smallest} for one day, channel and language are left out, from the totals too: they could point at a person. Today is shown from tomorrow on.`
    : "";
  renderLanguages(stats);
  renderChannels(stats);
  renderCharts(stats);
}

function card(name, value, metric, ...details) {
  return el("div", { class: "card", dataset: { card: metric } },
    el("dt", {}, name),
    el("dd", { class: "value", dataset: { metric } }, value),
    details.length ? el("dd", { class: "card-detail" }, ...details) : null);
}

// A number inside a card's detail line, findable by its metric.
const part = (metric, value) => el("span", { dataset: { metric } }, value);

function renderSummary(stats) {
  const t = stats.totals || {};
  const e = stats.eligibility || {};
  const wait = stats.wait || {};
  const cards = [
    card("Conversations", count(t.conversations), "conversations"),
    card("Messages from people", count(t.messages), "messages"),
    card("Not understood", share(t.not_understood, t.messages), "not_understood_share",
      part("not_understood", count(t.not_understood)), " of ", count(t.messages), " messages · ",
      part("clarifications", count(t.clarifications)), " clarifications asked · ",
      part("second_misses", count(t.second_misses)), " missed twice"),
    card("Safety messages", count(t.safety_messages), "safety_messages",
      "Danger now, exploitation, or thoughts of self-harm"),
    card("Handoff offers", count(t.handoff_offers), "handoff_offers", "A counsellor was offered"),
    card("Consents to a counsellor", count(t.consents), "consents"),
    card("Tickets", count(t.tickets), "tickets",
      part("tickets:urgent", count(t["tickets:urgent"])), " urgent · ",
      part("tickets:legal", count(t["tickets:legal"])), " legal · ",
      part("tickets:normal", count(t["tickets:normal"])), " normal"),
    card("Wait for the first counsellor reply (median)", minutes(wait.median_s), "wait_median",
      "90th percentile: ", part("wait_p90", minutes(wait.p90_s)), " · ",
      part("wait_count", count(wait.count)), " tickets answered"),
    card("Requests outside office hours", count(t.outside_office_hours), "outside_office_hours"),
    card("Eligibility checks started", count(t.eligibility_started), "eligibility_started"),
    card("Eligibility checks finished", count(t.eligibility_finished), "eligibility_finished",
      ...Object.entries(OUTCOMES).flatMap(([key, name], i) => [
        i ? " · " : "", part(`eligibility:${key}`, count(e[key])), ` ${name}`])),
    card("Deletion requests", count(t.deletion_requests), "deletion_requests"),
  ];
  $("summary").replaceChildren(...cards);
}

function figures(counts) {
  return [
    el("td", { dataset: { metric: "conversations" } }, count(counts.conversations)),
    el("td", { dataset: { metric: "messages" } }, count(counts.messages)),
    el("td", { dataset: { metric: "not_understood" } },
      `${count(counts.not_understood)} (${share(counts.not_understood, counts.messages)})`),
  ];
}

function renderLanguages(stats) {
  const byLanguage = stats.by_language || {};
  const waits = (stats.wait && stats.wait.by_language) || {};
  const codes = [...new Set([...Object.keys(byLanguage), ...Object.keys(waits)])];
  const of = (code) => byLanguage[code] || {};
  codes.sort((a, b) => (of(b).conversations || 0) - (of(a).conversations || 0) || a.localeCompare(b));
  const row = (code, counts, wait, heading) => el("tr", { dataset: { language: code } },
    el("th", { scope: "row" }, heading),
    ...figures(counts),
    el("td", { dataset: { metric: "safety_messages" } }, count(counts.safety_messages)),
    el("td", { dataset: { metric: "handoff_offers" } }, count(counts.handoff_offers)),
    el("td", { dataset: { metric: "consents" } }, count(counts.consents)),
    el("td", { dataset: { metric: "tickets" } }, count(counts.tickets)),
    el("td", { dataset: { metric: "outside_office_hours" } }, count(counts.outside_office_hours)),
    el("td", { dataset: { metric: "wait_median" } }, minutes(wait && wait.median_s)));
  const rows = codes.map((code) => row(code, of(code), waits[code],
    COUNTED_LANGUAGES[code] ? `${COUNTED_LANGUAGES[code]} (${code})` : code));
  if (codes.length) rows.push(row("all", stats.totals || {}, stats.wait, "All languages"));
  $("language-rows").replaceChildren(...rows);
  if (rows.length) $("language-rows").lastChild.classList.add("total");
  $("languages-empty").hidden = codes.length > 0;
}

function renderChannels(stats) {
  const byChannel = stats.by_channel || {};
  const rows = Object.keys(byChannel).sort().map((channel) => el("tr", { dataset: { channel } },
    el("th", { scope: "row" }, channel),
    ...figures(byChannel[channel]),
    el("td", { dataset: { metric: "tickets" } }, count(byChannel[channel].tickets))));
  $("channel-rows").replaceChildren(...rows);
}

// The charts are drawn by the desk; their text alternatives say the same in words.

function chartAlt(name, stats) {
  const t = stats.totals || {};
  const byLanguage = stats.by_language || {};
  const period = `from ${stats.from} to ${stats.to}`;
  const listed = (pairs) => (pairs.length ? pairs.join("; ") : "nothing counted");
  if (name === "conversations") {
    const pairs = Object.entries(byLanguage).filter(([, c]) => c.conversations)
      .sort((a, b) => b[1].conversations - a[1].conversations)
      .map(([code, c]) => `${languageName(code)} ${count(c.conversations)}`);
    return `Line chart of conversations per day by language, ${period}. In all: ${count(t.conversations)}; ${listed(pairs)}.`;
  }
  if (name === "fallback") {
    const pairs = Object.entries(byLanguage).filter(([, c]) => c.messages)
      .map(([code, c]) => `${languageName(code)} ${share(c.not_understood, c.messages)}`);
    return `Bar chart of the share of messages not understood per language, ${period}: ${listed(pairs)}.`;
  }
  if (name === "topics") {
    const merged = {};
    for (const topics of Object.values(stats.topics || {})) {
      for (const [intent, n] of Object.entries(topics)) merged[intent] = (merged[intent] || 0) + n;
    }
    const pairs = Object.entries(merged).sort((a, b) => b[1] - a[1]).slice(0, 10)
      .map(([intent, n]) => `${intent} ${count(n)}`);
    return `Bar chart of the ten most frequent topics, ${period}: ${listed(pairs)}.`;
  }
  const wait = stats.wait || {};
  return `Bar chart of tickets per day with the median wait for a counsellor's first reply, ${period}. `
    + `In all: ${count(t.tickets)} tickets; median wait ${minutes(wait.median_s)}.`;
}

function renderCharts(stats) {
  const query = `${periodQuery(state.period)}&gloss=${encodeURIComponent($("gloss").value)}`;
  $("charts").replaceChildren(...CHARTS.map(({ name, title }) => {
    const caption = el("figcaption", { id: `chart-${name}-caption` }, title);
    const image = el("img", {
      src: `/api/stats/charts/${name}.svg?${query}`, alt: chartAlt(name, stats),
      dataset: { chart: name }, width: "768", height: "346", decoding: "async",
    });
    image.addEventListener("error", () => {
      caption.append(el("span", { class: "error" }, " — the chart could not be drawn."));
    }, { once: true });
    return el("figure", { class: "chart" }, image, caption);
  }));
}

// Counting now (administrators).

async function countNow() {
  const button = $("refresh");
  button.disabled = true;
  $("status").textContent = "Counting…";
  try {
    const { ok, status, data } = await api("POST", "/api/stats/refresh");
    if (!ok) {
      $("status").textContent = "";
      $("problem").textContent = `Not counted: ${errorOf(data, status)}.`;
      return;
    }
    const read = data && Number.isInteger(data.events_read) ? data.events_read : 0;
    await Promise.all([loadStats(state.period), loadQuestions()]);
    const done = read ? `Counted ${count(read)} new event${read === 1 ? "" : "s"} from the assistant.`
      : "Up to date: nothing new to count.";
    $("status").textContent = done;
    announce(done);
  } catch (failure) {
    $("status").textContent = "";
    failed(failure);
  } finally {
    button.disabled = false;
  }
}

// The unanswered questions (administrators).

async function loadIntents() {
  // What a question can be labelled with, in words in the chosen language.
  const gloss = $("gloss").value;
  const { ok, data } = await api("GET", `/api/intents?gloss=${encodeURIComponent(gloss)}`);
  state.intents = ok && Array.isArray(data)
    ? data.filter((entry) => entry && /^[A-Za-z0-9_]+$/.test(entry.intent)) : [];
  const note = $("intents-note");
  note.hidden = state.intents.length > 0;
  note.textContent = state.intents.length ? ""
    : "The desk did not list its intents: type the intent's name (for example ask_cost).";
}

async function loadQuestions() {
  if (!state.me || state.me.role !== "admin") return;
  const list = $("questions");
  list.setAttribute("aria-busy", "true");
  const language = $("question-language").value;
  const query = `labelled=false${language ? `&language=${encodeURIComponent(language)}` : ""}`;
  const { ok, status, data } = await api("GET", `/api/unanswered?${query}`);
  if (language !== $("question-language").value) return; // the filter changed meanwhile
  if (!ok || !Array.isArray(data)) {
    $("unanswered-error").textContent = `The questions cannot be shown: ${errorOf(data, status)}.`;
    return;
  }
  $("unanswered-error").textContent = "";
  list.replaceChildren(...data.map(questionItem));
  list.setAttribute("aria-busy", "false");
  countQuestions(data.length >= 500);
}

function countQuestions(capped = false) {
  const n = $("questions").children.length;
  $("unanswered-count").textContent = capped ? "(the latest 500)" : `(${n})`;
  $("questions-empty").hidden = n > 0;
}

function intentChooser(id) {
  if (state.intents && state.intents.length) {
    return el("select", { id, class: "intent" },
      el("option", { value: "" }, "Choose…"),
      ...state.intents.map((entry) => el("option", { value: entry.intent },
        entry.name ? `${entry.name} (${entry.intent})` : entry.intent)));
  }
  return el("input", { id, class: "intent", autocomplete: "off", spellcheck: "false", maxlength: "64" });
}

function questionItem(question) {
  const id = Number(question.id);
  const text = el("p", { id: `question-${id}-text`, class: "question-text", dir: "auto",
    lang: LANGUAGES[question.language] ? question.language : null },
  String(question.text));
  const meta = el("p", { class: "question-meta" },
    el("time", { datetime: String(question.day) }, String(question.day)), " · ",
    languageName(question.language), " · ", String(question.channel));
  const choose = `question-${id}-intent`;
  const button = el("button", { type: "button", class: "small", dataset: { action: "label" },
    "aria-describedby": `question-${id}-text` }, "Label");
  return el("li", { class: "question", dataset: { questionId: id } },
    text, meta,
    el("div", { class: "label-row" },
      el("label", { for: choose }, "Intent"), intentChooser(choose), button),
    el("p", { class: "error", role: "alert" }));
}

async function labelQuestion(event) {
  const button = event.target.closest("button[data-action='label']");
  if (!button) return;
  const item = button.closest("li[data-question-id]");
  const id = item.dataset.questionId;
  const chooser = item.querySelector(".intent");
  const error = item.querySelector(".error");
  const intent = chooser.value.trim();
  if (!intent) {
    error.textContent = "Choose the intent it meant first.";
    chooser.focus();
    return;
  }
  error.textContent = "";
  button.disabled = true;
  try {
    const { ok, status, data } = await api("POST", `/api/unanswered/${encodeURIComponent(id)}/label`, { intent });
    if (!ok) {
      error.textContent = `Not labelled: ${errorOf(data, status)}.`;
      return;
    }
    const next = item.nextElementSibling || item.previousElementSibling;
    item.remove();
    countQuestions();
    const done = `Labelled as ${intent}.`;
    $("status").textContent = done;
    announce(done);
    if (next) next.querySelector(".intent").focus();
    else $("unanswered-heading").focus();
  } catch (failure) {
    if (!(failure instanceof Stopped)) error.textContent = "Not labelled: cannot reach the desk.";
  } finally {
    button.disabled = false;
  }
}

// Starting.

function start(me) {
  state.me = { username: me.username, role: me.role, csrf_token: me.csrf_token, languages: me.languages || [] };
  const admin = me.role === "admin";
  $("who").textContent = me.username || "the API token";
  $("my-role").textContent = admin || me.role === "viewer" ? ` (${ROLES[me.role].toLowerCase()})` : "";
  $("desk-link").hidden = !admin; // a viewer's console is this page
  $("refresh").hidden = !admin;
  $("refresh-hint").hidden = !admin;
  $("unanswered-section").hidden = !admin;
  $("gloss").value = chosenGloss(state.me.languages);
  $("gate").hidden = true;
  $("loading").hidden = true;
  $("stats-view").hidden = false;
}

async function boot() {
  $("period-form").addEventListener("submit", showPeriod);
  $("logout").addEventListener("click", logOut);
  $("gate-logout").addEventListener("click", logOut);
  $("refresh").addEventListener("click", countNow);
  $("gloss").addEventListener("change", () => {
    storage.set(GLOSS_KEY, $("gloss").value);
    if (state.stats) renderCharts(state.stats);
  });
  $("question-language").append(...Object.entries(LANGUAGES)
    .map(([code, name]) => el("option", { value: code }, `${name} (${code})`)));
  $("question-language").addEventListener("change", () => loadQuestions().catch(failed));
  $("questions").addEventListener("click", labelQuestion);
  try {
    const { status, data } = await api("GET", "/api/me");
    if (status !== 200 || !data) {
      gate("The desk did not answer. Reload the page to try again.", "Go to the counsellor desk");
      return;
    }
    if (data.must_change_password) {
      gatePassword();
      return;
    }
    if (data.role !== "admin" && data.role !== "viewer") {
      gateNoAccess(data.role);
      return;
    }
    start(data);
    await loadStats(askedPeriod());
    if (data.role === "admin") {
      await loadIntents();
      await loadQuestions();
    }
  } catch (failure) {
    if (failure instanceof Stopped) return;
    if (state.me) failed(failure);
    else gate("Cannot reach the desk. Reload the page to try again.", "Go to the counsellor desk");
  }
}

boot();
