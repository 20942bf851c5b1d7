// The console's only way to the server: the public REST and WebSocket API, same origin.

const BASE = "/api/v1/monitoring";
const TOKEN_KEY = "botmon-token";

/** An error answer of the API: status, message and the google.rpc details. */
export class ApiError extends Error {
  constructor(status, message, details = [], retryAfter = null) {
    super(message);
    this.status = status;
    this.details = details;
    this.retryAfter = retryAfter;
  }

  /** {field: description} from google.rpc.BadRequest details. */
  fieldViolations() {
    const out = {};
    for (const detail of this.details || []) {
      for (const v of detail.field_violations || []) out[v.field] = v.description;
    }
    return out;
  }
}

export const session = {
  get token() { return sessionStorage.getItem(TOKEN_KEY) || ""; },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
  // Who the gateway says the token belongs to (X-Botmon-Role / X-Botmon-Subject).
  role: "viewer",
  subject: "",
  get canWrite() { return this.role === "operator" || this.role === "admin"; },
};

/** The query string of an object, leaving out empty values. */
function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") search.append(key, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/**
 * Call a route under the API base; the JSON answer, or an ApiError.
 * A 401 is also announced as a "botmon:unauthorized" event; a 429 says when to retry.
 */
export async function api(path, {method = "GET", body, params, signal} = {}) {
  const headers = {Authorization: `Bearer ${session.token}`};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(BASE + path + query(params), {
      method, headers, signal, cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, `the gateway cannot be reached (${err.message})`);
  }
  const role = resp.headers.get("X-Botmon-Role");
  if (role) {
    session.role = role;
    session.subject = resp.headers.get("X-Botmon-Subject") || "";
  }
  const text = await resp.text();
  let doc = null;
  try { doc = text ? JSON.parse(text) : null; } catch { doc = null; }
  if (resp.ok) return doc;
  const error = (doc && doc.error) || {};
  let message = error.message || `${resp.status} ${resp.statusText}`;
  const retry = resp.headers.get("Retry-After");
  if (resp.status === 429) {
    // Whatever view asked, the person reads when trying again will work.
    const wait = Number(retry);
    message = `Rate limit reached (${message}). Retry in ${Number.isFinite(wait) ? wait : "a few"} s` +
      (Number.isFinite(wait) ? ` (at ${new Date(Date.now() + wait * 1000).toLocaleTimeString()}).` : ".");
  }
  const failure = new ApiError(resp.status, message, error.details || [],
                               retry === null ? null : Number(retry));
  if (resp.status === 401) window.dispatchEvent(new CustomEvent("botmon:unauthorized"));
  throw failure;
}

/** A WebSocket on a stream route (ws or wss as the page), the token as access_token. */
export function stream(path, params) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const url = `${scheme}//${location.host}${BASE}${path}` +
    query({...params, access_token: session.token});
  return new WebSocket(url);
}
