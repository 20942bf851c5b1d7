// Metrics: live uPlot charts of /ws/metrics and the /metrics/performance percentiles.

import uPlot from "../vendor/uPlot.esm.js";
import {api, stream} from "./api.js";
import {h, num, uid} from "./dom.js";

export const title = "Metrics";
const LIVE = [
  ["cpu_usage", "CPU", "%"],
  ["memory_usage", "Memory", "%"],
  ["requests_per_second", "Requests", "req/s"],
  ["average_latency_ms", "Latency", "ms"],
  ["active_sessions", "Active sessions", ""],
  ["error_rate", "Error rate", ""],
];
const POINTS = 300;
const COLOURS = ["#1f77b4", "#d62728", "#2ca02c"];

function chartWidth(box) {
  return Math.max(240, Math.floor(box.getBoundingClientRect().width) - 8);
}

function makeChart(box, label, unit, series, data, height = 160) {
  const opts = {
    width: chartWidth(box), height,
    legend: {show: series.length > 1},
    scales: {x: {time: true}},
    axes: [{}, {label: unit, size: 56}],
    series: [{}, ...series.map((name, i) => ({label: name, stroke: COLOURS[i], width: 1.5,
                                              dash: i ? [6 * i, 3] : undefined}))],
  };
  const chart = new uPlot(opts, data, box);
  chart.root.setAttribute("aria-hidden", "true");
  return chart;
}

function liveCharts(root, announce) {
  const grid = h("div", {class: "charts"});
  root.append(h("h2", {}, "Live"), h("p", {class: "muted"},
    "One point a second from /ws/metrics; the last five minutes are kept."), grid);
  const charts = {};
  for (const [metric, label, unit] of LIVE) {
    const id = uid("m");
    const value = h("output", {id, "aria-live": "off"}, "waiting…");
    const box = h("div", {class: "plot"});
    grid.append(h("figure", {"aria-labelledby": `${id}-cap`},
      h("figcaption", {id: `${id}-cap`}, `${label}: `, value), box));
    charts[metric] = {box, value, unit, xs: [], ys: [], chart: null};
  }
  const socket = stream("/ws/metrics", {metrics: LIVE.map(([m]) => m).join(","), interval: 1});
  let pending = false;
  let closing = false;
  socket.addEventListener("message", (event) => {
    const msg = JSON.parse(event.data);
    if (msg.type === "error") {
      announce(`Live metrics: ${msg.error.message}`, "error");
      return;
    }
    const c = charts[msg.metric];
    if (!c) return;
    c.xs.push(Date.parse(msg.timestamp) / 1000);
    c.ys.push(msg.value);
    if (c.xs.length > POINTS) { c.xs.shift(); c.ys.shift(); }
    c.value.textContent = num(msg.value, c.unit);
    c.dirty = true;
    if (!pending) {
      pending = true;
      requestAnimationFrame(draw);
    }
  });
  socket.addEventListener("close", (event) => {
    if (!closing) announce(`Live metrics stopped (${event.code} ${event.reason}).`, "error");
  });

  function draw() {
    pending = false;
    for (const [metric, label, unit] of LIVE) {
      const c = charts[metric];
      if (!c.dirty) continue;
      c.dirty = false;
      if (!c.chart) c.chart = makeChart(c.box, label, unit, [label], [c.xs, c.ys]);
      else c.chart.setData([c.xs, c.ys]);
    }
  }

  return {
    resize() {
      for (const c of Object.values(charts)) {
        if (c.chart) c.chart.setSize({width: chartWidth(c.box), height: 160});
      }
    },
    close() {
      closing = true;
      socket.close();
      for (const c of Object.values(charts)) if (c.chart) c.chart.destroy();
    },
  };
}

function performance(root, announce) {
  const period = h("select", {id: uid("period")},
    ["1h", "24h", "7d", "30d"].map((p) => h("option", {value: p, selected: p === "1h"}, p)));
  const resolution = h("select", {id: uid("resolution")},
    ["minute", "hour", "day"].map((r) => h("option", {value: r, selected: r === "minute"}, r)));
  const summary = h("p", {"aria-live": "polite"});
  const box = h("div", {class: "plot wide"});
  const form = h("form", {class: "inline"},
    h("label", {for: period.id}, "Period"), period,
    h("label", {for: resolution.id}, "Resolution"), resolution,
    h("button", {type: "submit"}, "Show percentiles"));
  root.append(h("h2", {}, "Response-time percentiles"), form, summary,
              h("figure", {}, h("figcaption", {}, "p50, p95 and p99 per bucket (ms)"), box));
  let chart = null;

  async function load() {
    try {
      const doc = await api("/metrics/performance",
                            {params: {period: period.value, resolution: resolution.value}});
      const rt = doc.performance.response_times;
      summary.textContent = `Over ${doc.period} (${doc.resolution} buckets): p50 ${num(rt.p50, "ms")}, ` +
        `p95 ${num(rt.p95, "ms")}, p99 ${num(rt.p99, "ms")}, ` +
        `${num(doc.performance.throughput.total_requests, "", 0)} requests.`;
      const series = doc.series || [];
      const data = [series.map((p) => Date.parse(p.timestamp) / 1000),
                    series.map((p) => p.p50), series.map((p) => p.p95), series.map((p) => p.p99)];
      if (chart) chart.destroy();
      chart = makeChart(box, "Percentiles", "ms", ["p50", "p95", "p99"], data, 220);
    } catch (err) {
      announce(`Performance: ${err.message}`, "error");
    }
  }

  form.addEventListener("submit", (event) => { event.preventDefault(); load(); });
  load();
  return {
    resize() { if (chart) chart.setSize({width: chartWidth(box), height: 220}); },
    close() { if (chart) chart.destroy(); },
  };
}

export function render(root, {announce}) {
  root.append(h("h1", {tabindex: "-1"}, "Metrics"));
  const parts = [liveCharts(root, announce), performance(root, announce)];
  const resize = () => parts.forEach((p) => p.resize());
  window.addEventListener("resize", resize);
  return () => {
    window.removeEventListener("resize", resize);
    parts.forEach((p) => p.close());
  };
}
