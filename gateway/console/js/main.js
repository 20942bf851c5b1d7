// Sign-in, navigation between the four views, and the messages every view shares.

import {api, session} from "./api.js";

const VIEWS = {
  overview: () => import("./overview.js"),
  metrics: () => import("./metrics.js"),
  logs: () => import("./logs.js"),
  alerts: () => import("./alerts.js"),
};

const $ = (selector) => document.querySelector(selector);
const login = $("#login");
const view = $("#view");
const nav = $("nav");
const who = $(".who");
const notice = $("#notice");
let leave = null;
let shown = 0;

/** Show a message in the shared status line; retry/errors stay until replaced. */
function announce(text, kind = "info") {
  notice.textContent = text;
  notice.dataset.kind = kind;
  notice.hidden = !text;
}

function signedIn(on) {
  login.hidden = on;
  view.hidden = !on;
  nav.hidden = !on;
  who.hidden = !on;
  document.body.dataset.role = on ? session.role : "";
}

async function show() {
  const name = (location.hash || "#overview").slice(1);
  const load = VIEWS[name] || VIEWS.overview;
  const turn = ++shown;
  if (leave) leave();
  leave = null;
  for (const link of nav.querySelectorAll("a")) {
    if (link.hash === `#${name}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const module = await load();
  if (turn !== shown) return;
  view.replaceChildren();
  document.title = `${module.title} · botmon console`;
  leave = module.render(view, {announce, canWrite: session.canWrite}) || null;
}

async function signIn(token) {
  session.token = token;
  // Any authorised read says who the token belongs to (X-Botmon-Role on every answer).
  await api("/health/detailed");
  $("#identity").textContent = `${session.subject || "signed in"} (${session.role})`;
  signedIn(true);
  await show();
}

function signOut(message) {
  if (leave) leave();
  leave = null;
  shown += 1;
  session.token = "";
  view.replaceChildren();
  signedIn(false);
  announce("");
  $("#login-error").textContent = message || "";
  $("#token").value = "";
  $("#token").focus();
}

$("#login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = $("#token").value.trim();
  const error = $("#login-error");
  if (!token) {
    error.textContent = "Enter a token.";
    return;
  }
  error.textContent = "";
  try {
    await signIn(token);
  } catch (err) {
    session.token = "";
    error.textContent = err.status === 401
      ? `The gateway refused this token: ${err.message}`
      : `Cannot sign in: ${err.message}`;
  }
});

$("#sign-out").addEventListener("click", () => signOut("Signed out."));
window.addEventListener("hashchange", () => { if (session.token) show(); });
window.addEventListener("botmon:unauthorized", () => {
  if (session.token) signOut("The token was refused (401); sign in again.");
});
if (session.token) {
  signIn(session.token).catch(() => signOut(""));
} else {
  signedIn(false);
}
