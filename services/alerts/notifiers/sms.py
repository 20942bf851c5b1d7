"""SMS: one JSON POST per number to ``BOTMON_SMS_GATEWAY_URL``.

The request is ``{"to": "+15551234567", "message": "<at most 160 characters>",
"alert_id": "alt_…", "status": "firing|resolved|acknowledged|test", "severity": "…"}``;
any 2xx answer means the gateway accepted it.
"""

from __future__ import annotations

from typing import Any

from services.alerts.notifiers.text import headline

__all__ = ["MAX_LENGTH", "build"]

MAX_LENGTH = 160


def build(payload: dict[str, Any], number: str) -> dict[str, Any]:
    text = f"{headline(payload)}: {payload['message']}"
    if len(text) > MAX_LENGTH:
        text = text[:MAX_LENGTH - 1] + "…"
    return {"to": number, "message": text, "alert_id": payload["alert_id"],
            "status": "firing" if payload["kind"] == "repeat" else payload["kind"],
            "severity": payload["severity"]}
