"""Words shared by every channel: the headline of a notification and links back to botmon."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

__all__ = ["Context", "headline", "status_of", "value_text"]

_LABELS = {"firing": "FIRING", "repeat": "FIRING", "resolved": "RESOLVED",
           "acknowledged": "ACKNOWLEDGED", "test": "TEST"}


@dataclass(frozen=True)
class Context:
    """What payloads need beyond the alert: where botmon is reachable."""

    external_url: str

    def history_url(self, alert_id: str) -> str:
        return (f"{self.external_url}/api/v1/monitoring/alerts/history"
                f"?alert_id={quote(alert_id)}")

    def alerts_url(self) -> str:
        return f"{self.external_url}/api/v1/monitoring/alerts"


def status_of(payload: dict[str, Any]) -> str:
    """Alertmanager's status: "resolved" once resolved, otherwise "firing"."""
    return "resolved" if payload["kind"] == "resolved" else "firing"


def value_text(payload: dict[str, Any]) -> str:
    value = payload.get("current_value")
    return "no data" if value is None else f"{value:g}"


def headline(payload: dict[str, Any]) -> str:
    """E.g. ``[FIRING] high_cpu (warning)``; acknowledgements name who acknowledged."""
    text = f"[{_LABELS[payload['kind']]}] {payload['rule']} ({payload['severity']})"
    if payload["kind"] == "repeat":
        text += " still firing"
    if payload["kind"] == "acknowledged":
        text += f" by {payload.get('acknowledged_by') or 'someone'}"
    return text
