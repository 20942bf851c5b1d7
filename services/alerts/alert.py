"""Alerts: one raised by a rule, from pending to resolved, with what it was raised under."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Any

from services.alerts.rule import Rule

__all__ = ["ACTIVE", "Alert", "alert_id_for"]

ACTIVE = ("pending", "firing")


def alert_id_for(fingerprint: str, triggered_at: float) -> str:
    """A stable id: the same series raised at the same instant has the same id on any replica."""
    digest = hashlib.sha256(f"{fingerprint}:{triggered_at:.6f}".encode()).hexdigest()
    return "alt_" + digest[:16]


@dataclass
class Alert:
    """An alert and the rule it was raised under (kept so it can be resolved after the rule goes)."""

    alert_id: str
    rule: Rule
    state: str
    triggered_at: float
    current_value: float | None = None
    message: str = ""
    fired_at: float | None = None
    resolved_at: float | None = None
    cleared_at: float | None = None
    acknowledged_by: str = ""
    acknowledged_at: float | None = None
    notes: str = ""
    notified: bool = False
    last_notified_at: float | None = None
    silenced: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    fingerprint: str = ""

    @classmethod
    def raise_for(cls, rule: Rule, now: float, value: float | None) -> Alert:
        fingerprint = rule.fingerprint
        return cls(alert_id=alert_id_for(fingerprint, now), rule=rule, state="",
                   triggered_at=now, current_value=value, message=rule.message(value),
                   labels=rule.alert_labels, fingerprint=fingerprint)

    @property
    def acknowledged(self) -> bool:
        return self.acknowledged_at is not None

    def copy(self) -> Alert:
        return dataclasses.replace(self, labels=dict(self.labels))

    def snapshot(self) -> dict[str, Any]:
        """What a notification needs to know about the alert, as plain JSON values."""
        rule = self.rule
        return {
            "alert_id": self.alert_id, "rule": rule.name, "severity": rule.severity,
            "state": self.state, "message": self.message, "metric": rule.metric,
            "labels": self.labels, "fingerprint": self.fingerprint,
            "current_value": self.current_value, "threshold": rule.threshold,
            "condition": rule.condition, "description": rule.description,
            "triggered_at": self.triggered_at, "fired_at": self.fired_at,
            "resolved_at": self.resolved_at, "acknowledged_by": self.acknowledged_by,
            "acknowledged_at": self.acknowledged_at, "notes": self.notes,
        }
