// What the counsellor desk's pages share: loaded before each page's own script (console.js,
// stats.js), which builds on these names. Everything that comes from the API is put on the
// page as text (textContent, text nodes), never parsed as HTML.
"use strict";

// The languages counsellors answer in.
const LANGUAGES = {
  en: "English", hu: "Hungarian", ar: "Arabic", fa: "Persian", ps: "Pashto", ur: "Urdu",
  sq: "Albanian", ru: "Russian", uk: "Ukrainian", tr: "Turkish", fr: "French", vi: "Vietnamese",
};
// The languages a counsellor can read the assistant's messages in (the desk's glosses).
const GLOSS_LANGUAGES = { en: "English", hu: "Magyar" };
const GLOSS_KEY = "desk.glossLanguage"; // one choice per browser, for every page
const ROLES = { counsellor: "Counsellor", admin: "Administrator", viewer: "Viewer" };

const $ = (id) => document.getElementById(id);

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined && child !== false)
    .map((child) => (typeof child === "number" ? String(child) : child)));
  return node;
}

const errorOf = (data, status) => (data && typeof data.error === "string" ? data.error : `error ${status}`);

function announce(text) {
  // Emptied first so that the same words twice in a row are read out twice.
  $("announcer").textContent = "";
  setTimeout(() => { $("announcer").textContent = text; }, 100);
}

const storage = {
  get(key) {
    try { return window.localStorage.getItem(key); } catch { return null; }
  },
  set(key, value) {
    try { window.localStorage.setItem(key, value); } catch { /* private mode: not kept */ }
  },
};

// The language to read glosses in: the one last chosen in this browser, else the first of
// the counsellor's own that the desk has glosses in, else English.
function chosenGloss(languages) {
  const saved = storage.get(GLOSS_KEY);
  const theirs = languages.find((code) => GLOSS_LANGUAGES[code]);
  return GLOSS_LANGUAGES[saved] ? saved : theirs || "en";
}

// The desk's API, as { status, ok, data }. What a page does when the session is gone (401)
// or the account must first change its temporary password (403 with must_change_password)
// is its own: onSignedOut(path) and onMustChange() throw to stop the caller, or return to
// hand the answer back like any other. csrf() gives the session's token, if any.
function makeApi({ csrf, onSignedOut, onMustChange }) {
  return async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const token = method === "GET" ? null : csrf();
    if (token) headers["X-CSRF-Token"] = token;
    const response = await fetch(path, {
      method, headers, credentials: "same-origin", cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401) onSignedOut(path);
    const data = response.status === 204 ? null : await response.json().catch(() => null);
    if (response.status === 403 && data && data.must_change_password === true) onMustChange();
    return { status: response.status, ok: response.ok, data };
  };
}
