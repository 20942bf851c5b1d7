// Building DOM from elements and text nodes only (no HTML parsing): every value from the API is inserted as text.

let ids = 0;

/** A fresh element id with the given prefix. */
export function uid(prefix) {
  ids += 1;
  return `${prefix}-${ids}`;
}

/** h("p", {class: "x", onclick: fn}, "text", child): an element with attributes and children. */
export function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "value") node.value = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const MARKS = {
  healthy: "✓", running: "✓", active: "✓", firing: "✕", critical: "✕", unhealthy: "✕",
  error: "✕", stopped: "✕", degraded: "!", warning: "!", warn: "!", pending: "…",
  not_configured: "–", expired: "–", resolved: "✓", info: "i", debug: "·",
};

/** A state as a word with a symbol: colour is added by CSS but never the only signal. */
export function badge(state) {
  const word = state || "unknown";
  return h("span", {class: `badge s-${word.replace(/[^a-z_]/g, "")}`},
           h("span", {"aria-hidden": "true"}, MARKS[word] || "?"), " ", word.replace(/_/g, " "));
}

// One formatter for every timestamp: toLocaleString() would build one per call, which
// shows at a thousand log lines a second.
const LOCAL_TIME = new Intl.DateTimeFormat(undefined, {dateStyle: "short", timeStyle: "medium"});

/** An RFC 3339 timestamp as local date and time text. */
export function localTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : LOCAL_TIME.format(date);
}

/** An RFC 3339 timestamp as local date and time, in a <time> element. */
export function when(iso) {
  return iso ? h("time", {datetime: iso}, localTime(iso)) : "—";
}

/** A number rounded for display, with its unit. */
export function num(value, unit = "", digits = 2) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  const text = Number(value).toLocaleString(undefined, {maximumFractionDigits: digits});
  return unit ? `${text} ${unit}` : text;
}

/** Seconds as "3d 4h", "5m 2s". */
export function duration(seconds) {
  let s = Math.max(0, Math.round(Number(seconds) || 0));
  const parts = [];
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]]) {
    if (s >= size || (unit === "s" && !parts.length)) {
      parts.push(`${Math.floor(s / size)}${unit}`);
      s %= size;
    }
    if (parts.length === 2) break;
  }
  return parts.join(" ");
}

/** A table with a caption, column headers and rows of cells. */
export function table(caption, headers, rows) {
  return h("div", {class: "scroll"},
    h("table", {},
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, headers.map((name) => h("th", {scope: "col"}, name)))),
      h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c, i) =>
        i === 0 ? h("th", {scope: "row"}, c) : h("td", {}, c)))))));
}
