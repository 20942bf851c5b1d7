// Overview: /health/detailed and the /status table, refreshed every few seconds.

import {api} from "./api.js";
import {badge, duration, h, num, table, when} from "./dom.js";

export const title = "Overview";
const REFRESH_MS = 5000;

function componentRows(components) {
  return Object.entries(components || {}).map(([name, c]) => [
    name,
    badge(c.status),
    c.reason || "—",
    num(c.latency_ms, "ms"),
    num(c.probe_duration_ms, "ms"),
    when(c.checked_at),
  ]);
}

function details(entry) {
  const pairs = Object.entries(entry.details || {});
  if (!pairs.length) return "—";
  return h("dl", {class: "pairs"}, pairs.map(([k, v]) => [
    h("dt", {}, k), h("dd", {}, typeof v === "object" ? JSON.stringify(v) : String(v))]));
}

function serviceRows(services) {
  return (services || []).map((s) => [
    s.name,
    badge(s.status),
    duration(s.uptime_seconds),
    s.port || "—",
    s.pid || "—",
    s.version || "—",
    s.host || "—",
    details(s),
  ]);
}

export function render(root, {announce}) {
  const summary = h("p", {class: "overall", "aria-live": "polite"}, "Loading health…");
  const health = h("div");
  const status = h("div");
  const updated = h("p", {class: "muted"});
  root.append(h("h1", {tabindex: "-1"}, "Overview"), summary, updated,
              h("h2", {}, "Components"), health, h("h2", {}, "Services"), status);
  let timer = null;
  let stopped = false;

  async function refresh() {
    const [detailed, services] = await Promise.allSettled([api("/health/detailed"),
                                                           api("/status")]);
    if (stopped) return;
    if (detailed.status === "fulfilled") {
      const d = detailed.value;
      summary.replaceChildren("Overall status: ", badge(d.status),
        d.critical_components?.length ? ` (critical: ${d.critical_components.join(", ")})` : "");
      health.replaceChildren(table("Components probed by /health/detailed",
        ["Component", "Status", "Reason", "Latency", "Probe duration", "Checked"],
        componentRows(d.components)));
    } else {
      announce(`Health: ${detailed.reason.message}`, "error");
    }
    if (services.status === "fulfilled") {
      status.replaceChildren(table("Suite, probed components, registered services and exports",
        ["Name", "Status", "Uptime", "Port", "PID", "Version", "Host", "Details"],
        serviceRows(services.value.services)));
    } else {
      announce(`Status: ${services.reason.message}`, "error");
    }
    updated.replaceChildren("Updated ", when(new Date().toISOString()),
                            `; refreshes every ${REFRESH_MS / 1000} s.`);
    timer = setTimeout(refresh, REFRESH_MS);
  }

  refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
