"""Microsoft Teams: a Workflows webhook message carrying an Adaptive Card."""

from __future__ import annotations

from typing import Any

from services.alerts.notifiers.text import Context, headline, value_text
from services.alerts.rfc3339 import rfc3339

__all__ = ["build"]

_COLOR = {"firing": "Attention", "repeat": "Attention", "resolved": "Good",
          "acknowledged": "Accent", "test": "Default"}


def build(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    facts = [
        {"title": "Severity", "value": payload["severity"]},
        {"title": "Value", "value": f"{value_text(payload)} (threshold {payload['threshold']:g})"},
        {"title": "Metric", "value": payload["metric"]},
        {"title": "Since", "value": rfc3339(payload["triggered_at"])},
        {"title": "Alert", "value": payload["alert_id"]},
    ]
    if payload["kind"] == "acknowledged":
        facts.append({"title": "Acknowledged by", "value": payload["acknowledged_by"]})
        if payload.get("notes"):
            facts.append({"title": "Notes", "value": payload["notes"]})
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {"type": "TextBlock", "text": headline(payload), "size": "Large", "weight": "Bolder",
             "color": _COLOR[payload["kind"]], "wrap": True},
            {"type": "TextBlock", "text": payload["message"], "wrap": True},
            {"type": "FactSet", "facts": facts},
        ],
        "actions": [{"type": "Action.OpenUrl", "title": "View history",
                     "url": ctx.history_url(payload["alert_id"])}],
    }
    return {"type": "message", "attachments": [{
        "contentType": "application/vnd.microsoft.card.adaptive",
        "contentUrl": None,
        "content": card,
    }]}
