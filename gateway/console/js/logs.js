// Logs: search with the filters of GET /logs, paged by next_cursor, and a live tail.

import {api, stream} from "./api.js";
import {badge, h, localTime, uid} from "./dom.js";

export const title = "Logs";
const PAGE = 50;
/** Lines of the live tail kept in view; older ones are removed as new ones arrive. */
const LIVE_LINES = 500;
/** The live tail draws what arrived every DRAW_MS, in one batch: no task per line. */
const DRAW_MS = 50;

function metadata(log) {
  return log.metadata && Object.keys(log.metadata).length
    ? h("pre", {}, JSON.stringify(log.metadata, null, 2))
    : h("p", {class: "muted"}, "No metadata.");
}

/** One entry; its metadata is built when first opened (the tail makes many, few are opened). */
function entry(log) {
  // Few elements a line: the live tail adds up to a thousand lines a second.
  const details = h("details", {},
    h("summary", {}, `${localTime(log.timestamp)} `, badge(log.level), " ",
      h("b", {}, log.service), ` ${log.message}`));
  details.addEventListener("toggle", () => {
    if (details.open && details.children.length === 1) {
      details.append(h("p", {class: "muted"}, `id ${log.id}`), metadata(log));
    }
  });
  return h("li", {}, details);
}

function field(label, control) {
  control.id = control.id || uid("f");
  return h("div", {class: "field"}, h("label", {for: control.id}, label), control);
}

function isoOrEmpty(local) {
  return local ? new Date(local).toISOString() : "";
}

export function render(root, {announce}) {
  const q = h("input", {type: "search", name: "q", autocomplete: "off"});
  const level = h("select", {name: "level"}, h("option", {value: ""}, "any"),
    ["debug", "info", "warn", "error"].map((l) => h("option", {value: l}, `${l} and above`)));
  const service = h("input", {type: "text", name: "service", autocomplete: "off"});
  const from = h("input", {type: "datetime-local", name: "start_time", step: "1"});
  const to = h("input", {type: "datetime-local", name: "end_time", step: "1"});
  const live = h("input", {type: "checkbox", role: "switch", name: "live"});
  const form = h("form", {class: "filters", role: "search", "aria-label": "Log filters"},
    field("Search", q), field("Level", level), field("Service", service),
    field("From", from), field("To", to),
    h("div", {class: "field actions"}, h("button", {type: "submit"}, "Apply filters")),
    h("div", {class: "field toggle"}, live,
      h("label", {for: live.id = uid("live")}, "Live tail")));
  const liveState = h("p", {class: "muted", "aria-live": "polite"});
  const liveList = h("ol", {class: "log live", "aria-label": "Live tail"});
  const skippedNote = h("p", {class: "muted"});
  const total = h("p", {"aria-live": "polite"});
  const results = h("ol", {class: "log", "aria-label": "Search results"});
  const more = h("button", {type: "button", hidden: true}, "Load more");
  root.append(h("h1", {tabindex: "-1"}, "Logs"), form, liveState, liveList, skippedNote,
              h("h2", {}, "Search results"), total, results, more);

  let cursor = "";
  let socket = null;
  let queue = [];
  let drawTimer = 0;
  let skipped = 0;
  let searching = null;

  function filters() {
    return {q: q.value.trim(), level: level.value, service: service.value.trim()};
  }

  async function search(append) {
    if (searching) searching.abort();
    searching = new AbortController();
    const params = {...filters(), start_time: isoOrEmpty(from.value),
                    end_time: isoOrEmpty(to.value), limit: PAGE, cursor: append ? cursor : ""};
    try {
      const doc = await api("/logs", {params, signal: searching.signal});
      if (!append) results.replaceChildren();
      results.append(...doc.logs.map(entry));
      cursor = doc.next_cursor || "";
      more.hidden = !cursor;
      total.textContent = `${doc.total} matching entries; ${results.children.length} shown.`;
    } catch (err) {
      if (err.name !== "AbortError") announce(`Logs: ${err.message}`, "error");
    }
  }

  function flush() {
    // Every line that arrived since the last draw, in one fragment. Only lines older than the
    // newest LIVE_LINES of a batch are skipped, as they would leave the view as they came into
    // it; they are counted (and found by a search: the tail only shows, the store keeps all).
    drawTimer = 0;
    const batch = queue.splice(Math.max(0, queue.length - LIVE_LINES));
    skipped += queue.length;
    queue = [];
    const fragment = document.createDocumentFragment();
    for (let i = batch.length - 1; i >= 0; i--) fragment.append(entry(batch[i]));
    liveList.prepend(fragment);
    while (liveList.children.length > LIVE_LINES) liveList.lastElementChild.remove();
    if (skipped) skippedNote.textContent = `${skipped} lines arrived too fast to draw; search finds them.`;
  }

  function schedule() {
    if (!drawTimer) drawTimer = setTimeout(() => requestAnimationFrame(flush), DRAW_MS);
  }

  function stopTail() {
    if (socket) {
      socket.onclose = null;
      socket.close();
      socket = null;
    }
  }

  function startTail() {
    stopTail();
    const f = filters();
    socket = stream("/ws/logs", f);
    const described = [f.level && `level ≥ ${f.level}`, f.service && `service ${f.service}`,
                       f.q && `text "${f.q}"`].filter(Boolean).join(", ") || "no filter";
    liveState.textContent = `Live tail on (${described}); the newest ${LIVE_LINES} lines stay in view.`;
    socket.onmessage = (event) => {
      const msg = JSON.parse(event.data);
      if (msg.type === "error") {
        announce(`Live tail: ${msg.error.message}`, "error");
        return;
      }
      if (msg.type !== "log") return;
      queue.push(msg.log);
      schedule();
    };
    socket.onclose = (event) => {
      socket = null;
      live.checked = false;
      liveState.textContent = `Live tail stopped (${event.code}${event.reason ? ` ${event.reason}` : ""}).`;
    };
  }

  live.addEventListener("change", () => {
    if (live.checked) startTail();
    else {
      stopTail();
      liveState.textContent = "Live tail off.";
    }
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    search(false);
    if (live.checked) startTail();
  });
  more.addEventListener("click", () => search(true));
  search(false);
  return () => {
    stopTail();
    clearTimeout(drawTimer);
    if (searching) searching.abort();
  };
}
