"""PagerDuty: Events API v2 trigger, acknowledge and resolve, deduplicated by alert id."""

from __future__ import annotations

from typing import Any

from services.alerts.notifiers.text import Context, headline
from services.alerts.rfc3339 import rfc3339

__all__ = ["build", "event_action"]

_ACTIONS = {"firing": "trigger", "repeat": "trigger", "test": "trigger",
            "acknowledged": "acknowledge", "resolved": "resolve"}


def event_action(kind: str) -> str:
    return _ACTIONS[kind]


def build(payload: dict[str, Any], routing_key: str, ctx: Context) -> dict[str, Any]:
    action = event_action(payload["kind"])
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        # One incident per alert: a recurrence after resolution is a new alert, so a new incident.
        "dedup_key": payload["alert_id"],
    }
    if action == "trigger":
        body["payload"] = {
            "summary": f"{headline(payload)}: {payload['message']}"[:1024],
            "source": "botmon",
            "severity": payload["severity"],
            "timestamp": rfc3339(payload.get("fired_at") or payload["triggered_at"]),
            "component": payload["metric"],
            "group": payload["rule"],
            "class": "threshold",
            "custom_details": {
                "value": payload["current_value"], "threshold": payload["threshold"],
                "condition": payload["condition"], "labels": payload["labels"],
                "fingerprint": payload["fingerprint"],
            },
        }
        body["client"] = "botmon"
        body["client_url"] = ctx.history_url(payload["alert_id"])
    return body
