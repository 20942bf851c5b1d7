"""Slack: an incoming-webhook message laid out with Block Kit."""

from __future__ import annotations

from typing import Any

from services.alerts.notifiers.text import Context, headline, value_text
from services.alerts.rfc3339 import rfc3339

__all__ = ["build"]

_EMOJI = {"firing": ":rotating_light:", "repeat": ":rotating_light:", "resolved": ":white_check_mark:",
          "acknowledged": ":eyes:", "test": ":test_tube:"}


def build(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    title = f"{_EMOJI[payload['kind']]} {headline(payload)}"
    fields = [
        {"type": "mrkdwn", "text": f"*Severity*\n{payload['severity']}"},
        {"type": "mrkdwn", "text": f"*Value*\n{value_text(payload)} "
                                   f"(threshold {payload['threshold']:g})"},
        {"type": "mrkdwn", "text": f"*Metric*\n`{payload['metric']}`"},
        {"type": "mrkdwn", "text": f"*Since*\n{rfc3339(payload['triggered_at'])}"},
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150], "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": payload["message"][:3000]},
         "fields": fields},
    ]
    if payload["kind"] == "acknowledged":
        notes = f": {payload['notes']}" if payload.get("notes") else ""
        blocks.append({"type": "section", "text": {
            "type": "mrkdwn",
            "text": f"Acknowledged by *{payload['acknowledged_by']}*{notes}"[:3000]}})
    blocks.append({"type": "context", "elements": [{
        "type": "mrkdwn",
        "text": f"<{ctx.history_url(payload['alert_id'])}|{payload['alert_id']}> · "
                f"fingerprint {payload['fingerprint']}"}]})
    # `text` is the fallback shown in notifications and by clients without Block Kit.
    return {"text": f"{headline(payload)}: {payload['message']}", "blocks": blocks}
