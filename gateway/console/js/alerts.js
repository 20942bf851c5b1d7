// Alerts: active alerts with acknowledge, rules, silences and history.

import {api} from "./api.js";
import {badge, h, num, table, uid, when} from "./dom.js";
import {confirmDialog, formDialog} from "./dialogs.js";

export const title = "Alerts";
const CONDITIONS = ["greater_than", "greater_than_or_equal", "less_than", "less_than_or_equal",
                    "equal", "not_equal"];
const SEVERITIES = ["info", "warning", "error", "critical"];
const HISTORY_PAGE = 20;
const REFRESH_MS = 30000;

function section(heading, ...children) {
  const id = uid("sec");
  return h("section", {"aria-labelledby": id}, h("h2", {id}, heading), ...children);
}

const list = (values) => (values || []).join(", ");
const split = (text) => text.split(",").map((v) => v.trim()).filter(Boolean);

function ruleFields(rule) {
  const r = rule || {};
  const n = r.notify || {};
  return [
    {name: "name", label: "Name", value: r.name, required: true, readonly: Boolean(rule),
     hint: "Letters, digits, _ - and . (the rule is replaced when the name exists)"},
    {name: "metric", label: "Metric", value: r.metric, required: true,
     hint: "Dotted path of /metrics or /metrics/application, e.g. memory.usage_percent"},
    {name: "condition", label: "Condition", value: r.condition || "greater_than",
     options: CONDITIONS},
    {name: "threshold", label: "Threshold", value: r.threshold, type: "number", required: true,
     step: "any"},
    {name: "duration_seconds", label: "For (seconds)", value: r.duration_seconds ?? 60,
     type: "number", step: "1"},
    {name: "severity", label: "Severity", value: r.severity || "warning", options: SEVERITIES},
    {name: "description", label: "Description", value: r.description,
     hint: "Message template; {value}, {threshold}, {metric} and {duration} are filled in"},
    {name: "notify.webhook", label: "Webhook URL", value: n.webhook, type: "url"},
    {name: "secret", label: "Webhook secret", type: "password",
     hint: rule?.has_secret ? "Set: the API never shows it. Type it again to keep signing."
                            : "Signs the webhook body (X-Botmon-Signature); optional"},
    {name: "notify.email", label: "E-mail addresses", value: list(n.email),
     hint: "Comma separated"},
    {name: "notify.slack", label: "Slack webhook URL", value: n.slack, type: "url"},
    {name: "notify.teams", label: "Teams webhook URL", value: n.teams, type: "url"},
    {name: "notify.pagerduty", label: "PagerDuty routing key", value: n.pagerduty},
    {name: "notify.sms", label: "SMS numbers", value: list(n.sms),
     hint: "Comma separated, E.164 (+15551234567)"},
    {name: "repeat_interval_seconds", label: "Repeat every (seconds)",
     value: r.repeat_interval_seconds ?? 14400, type: "number", step: "1"},
    {name: "keep_firing_seconds", label: "Keep firing (seconds)",
     value: r.keep_firing_seconds ?? 0, type: "number", step: "1"},
    {name: "recovery_threshold", label: "Recovery threshold", value: r.recovery_threshold,
     type: "number", step: "any", hint: "Optional: the value to cross back over to resolve"},
    {name: "on_no_data", label: "On no data", value: r.on_no_data || "ok",
     options: ["ok", "alert", "keep"]},
    {name: "labels", label: "Labels",
     value: Object.entries(r.labels || {}).map(([k, v]) => `${k}=${v}`).join(", "),
     hint: "Comma separated name=value pairs"},
  ];
}

/** A number field as the API takes it: a number, or the text as typed for the API to refuse. */
function number(text, fallback) {
  if (text === "") return fallback;
  const value = Number(text);
  return Number.isNaN(value) ? text : value;
}

function ruleBody(values) {
  const rule = {
    name: values.name, metric: values.metric, condition: values.condition,
    threshold: number(values.threshold, ""),
    duration_seconds: number(values.duration_seconds, 0),
    severity: values.severity, description: values.description,
    notify: {webhook: values["notify.webhook"], email: split(values["notify.email"]),
             slack: values["notify.slack"], teams: values["notify.teams"],
             pagerduty: values["notify.pagerduty"], sms: split(values["notify.sms"])},
    repeat_interval_seconds: number(values.repeat_interval_seconds, 0),
    keep_firing_seconds: number(values.keep_firing_seconds, 0),
    on_no_data: values.on_no_data,
    labels: Object.fromEntries(split(values.labels).map((pair) => {
      const at = pair.indexOf("=");
      return at < 0 ? [pair, ""] : [pair.slice(0, at).trim(), pair.slice(at + 1).trim()];
    })),
  };
  if (values.secret) rule.secret = values.secret;
  if (values.recovery_threshold !== "") rule.recovery_threshold = number(values.recovery_threshold);
  return rule;
}

export function render(root, {announce, canWrite}) {
  const active = h("div");
  const counts = h("p", {"aria-live": "polite"});
  const rules = h("div");
  const silences = h("div");
  const history = h("div");
  const historyNav = h("div", {class: "inline"});
  const refresh = h("button", {type: "button"}, "Refresh alerts");
  root.append(h("h1", {tabindex: "-1"}, "Alerts"),
    section("Active alerts", counts, refresh, active),
    section("Rules", canWrite ? h("button", {type: "button", onclick: () => editRule(null)},
                                  "New rule") : null, rules),
    section("Silences", canWrite ? h("button", {type: "button", onclick: newSilence},
                                     "New silence") : null, silences),
    section("History", history, historyNav));
  let stopped = false;
  let timer = null;
  const pages = [""];

  async function call(what, fn) {
    try {
      return await fn();
    } catch (err) {
      if (!stopped) announce(`${what}: ${err.message}`, "error");
      return null;
    }
  }

  async function loadAlerts() {
    clearTimeout(timer);
    const doc = await call("Alerts", () => api("/alerts"));
    if (stopped) return;
    timer = setTimeout(loadAlerts, REFRESH_MS);
    if (!doc) return;
    counts.textContent = `${doc.active_count} firing (${doc.critical_count} critical, ` +
      `${doc.warning_count} warning); ${doc.pending_count} pending.`;
    if (!doc.alerts.length) {
      active.replaceChildren(h("p", {}, "No alert is firing."));
      return;
    }
    active.replaceChildren(h("ul", {class: "cards"}, doc.alerts.map(alertCard)));
  }

  function alertCard(alert) {
    const heading = uid("alert");
    const ack = alert.acknowledged
      ? h("p", {}, "Acknowledged by ", h("strong", {}, alert.acknowledged_by || "—"), " at ",
          when(alert.acknowledged_at), alert.notes ? `: “${alert.notes}”` : "")
      : h("p", {}, "Not acknowledged.");
    return h("li", {class: "card", "aria-labelledby": heading},
      h("h3", {id: heading}, alert.rule, " ", badge(alert.severity)),
      h("p", {}, alert.message),
      h("dl", {class: "pairs"},
        h("dt", {}, "State"), h("dd", {}, badge(alert.state), alert.silenced ? " (silenced)" : ""),
        h("dt", {}, "Value"), h("dd", {}, `${num(alert.current_value)} (threshold ${num(alert.threshold)})`),
        h("dt", {}, "Since"), h("dd", {}, when(alert.fired_at || alert.triggered_at)),
        h("dt", {}, "Metric"), h("dd", {}, alert.metric || "—"),
        h("dt", {}, "Id"), h("dd", {}, alert.alert_id)),
      ack,
      canWrite && !alert.acknowledged
        ? h("button", {type: "button", "aria-describedby": heading,
                       onclick: () => acknowledge(alert)}, "Acknowledge")
        : null);
  }

  async function acknowledge(alert) {
    const done = await formDialog({
      title: `Acknowledge ${alert.rule} (${alert.alert_id})`,
      submit: "Acknowledge",
      fields: [{name: "notes", label: "Notes", multiline: true, maxlength: 4096,
                hint: "What you are doing about it; kept on the alert and in its history"}],
      send: (values) => api(`/alerts/${encodeURIComponent(alert.alert_id)}/acknowledge`,
                            {method: "POST", body: {notes: values.notes}}),
    });
    if (done) {
      announce(`Acknowledged ${alert.rule}.`);
      await loadAlerts();
      await loadHistory(pages[pages.length - 1]);
    }
  }

  async function loadRules() {
    const doc = await call("Rules", () => api("/alerts/rules"));
    if (!doc || stopped) return;
    const headers = ["Name", "Metric", "Condition", "Threshold", "For", "Severity"];
    if (canWrite) headers.push("Actions");
    rules.replaceChildren(table(`${doc.rules.length} rules`, headers, doc.rules.map((r) => {
      const cells = [r.name, r.metric, r.condition.replace(/_/g, " "), num(r.threshold, "", 6),
                     `${r.duration_seconds} s`, badge(r.severity)];
      if (canWrite) {
        cells.push(h("span", {class: "inline"},
          h("button", {type: "button", "aria-label": `Edit ${r.name}`, onclick: () => editRule(r)},
            "Edit"),
          h("button", {type: "button", "aria-label": `Delete ${r.name}`,
                       onclick: () => deleteRule(r)}, "Delete")));
      }
      return cells;
    })));
  }

  async function editRule(rule) {
    const done = await formDialog({
      title: rule ? `Edit rule ${rule.name}` : "New rule",
      submit: rule ? "Save rule" : "Create rule",
      fields: ruleFields(rule),
      note: "Saving replaces the whole rule with these fields.",
      send: (values) => api("/alerts/configure", {method: "POST", body: ruleBody(values)}),
    });
    if (done) {
      announce(`Rule ${done.rule.name} ${rule ? "saved" : "created"}.`);
      await loadRules();
    }
  }

  async function deleteRule(rule) {
    const ok = await confirmDialog(`Delete rule ${rule.name}?`,
      "A firing alert of this rule is resolved and its resolve notification sent.", "Delete");
    if (!ok) return;
    const done = await call("Delete", () => api(`/alerts/rules/${encodeURIComponent(rule.name)}`,
                                                {method: "DELETE"}));
    if (done) {
      announce(`Rule ${rule.name} deleted.`);
      await loadRules();
    }
  }

  async function loadSilences() {
    const doc = await call("Silences", () => api("/alerts/silences"));
    if (!doc || stopped) return;
    const headers = ["Id", "State", "Matchers", "Ends", "Created by", "Comment"];
    if (canWrite) headers.push("Actions");
    silences.replaceChildren(table(`${doc.silences.length} silences`, headers,
      doc.silences.map((s) => {
        const cells = [s.silence_id, badge(s.state),
          s.matchers.map((m) => `${m.name}${m.is_negative ? "!" : ""}${m.is_regex ? "=~" : "="}${m.value}`)
            .join(", "),
          when(s.ends_at), s.created_by || "—", s.comment || "—"];
        if (canWrite) {
          cells.push(s.state === "expired" ? "—" : h("button", {type: "button",
            "aria-label": `Expire ${s.silence_id}`, onclick: () => expire(s)}, "Expire"));
        }
        return cells;
      })));
  }

  async function newSilence() {
    const done = await formDialog({
      title: "New silence",
      submit: "Create silence",
      fields: [
        {name: "matcher", label: "Match on", value: "alertname",
         hint: "alertname (the rule), severity or a label name"},
        {name: "value", label: "Value", required: true},
        {name: "minutes", label: "Duration (minutes)", type: "number", value: 60, step: "1"},
        {name: "comment", label: "Comment"},
      ],
      send: (v) => api("/alerts/silences", {method: "POST", body: {
        matchers: [{name: v.matcher, value: v.value}],
        ends_at: new Date(Date.now() + Number(v.minutes || 0) * 60000).toISOString(),
        comment: v.comment}}),
    });
    if (done) {
      announce(`Silence ${done.silence.silence_id} created.`);
      await loadSilences();
    }
  }

  async function expire(silence) {
    const done = await call("Expire", () => api(
      `/alerts/silences/${encodeURIComponent(silence.silence_id)}`, {method: "DELETE"}));
    if (done) {
      announce(`Silence ${silence.silence_id} expired.`);
      await loadSilences();
    }
  }

  async function loadHistory(token) {
    const doc = await call("History", () => api("/alerts/history",
                                               {params: {page_size: HISTORY_PAGE, page_token: token}}));
    if (!doc || stopped) return;
    history.replaceChildren(table(`History, page ${pages.length}`,
      ["Time", "Alert", "Rule", "Kind", "Change", "Value", "Detail"],
      doc.history.map((e) => [when(e.time), e.alert_id, e.rule, e.kind,
        e.kind === "transition" ? `${e.from_state || "new"} → ${e.to_state}`
          : e.delivery ? `${e.delivery.channel} ${e.delivery.success ? "sent" : "failed"}` : "—",
        num(e.value), e.detail || e.delivery?.error || "—"])));
    const buttons = [];
    if (pages.length > 1) {
      buttons.push(h("button", {type: "button", onclick: () => {
        pages.length = 1;
        loadHistory("");
      }}, "First page"));
    }
    if (doc.next_page_token) {
      buttons.push(h("button", {type: "button", onclick: () => {
        pages.push(doc.next_page_token);
        loadHistory(doc.next_page_token);
      }}, "Next page"));
    }
    historyNav.replaceChildren(...buttons);
  }

  refresh.addEventListener("click", loadAlerts);
  loadAlerts();
  loadRules();
  loadSilences();
  loadHistory("");
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
