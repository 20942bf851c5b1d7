"""Conversion between the alerts protos and the service's domain types."""

from __future__ import annotations

import math
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from botmon.alerts.v1 import alert_pb2
from services.alerts.alert import Alert
from services.alerts.masking import mask
from services.alerts.rule import Notify, Rule
from services.alerts.silence import Matcher, Silence

__all__ = [
    "alert_message",
    "delivery_message",
    "history_message",
    "matchers_from_message",
    "rule_from_message",
    "rule_message",
    "seconds",
    "silence_message",
    "timestamp",
]


def timestamp(ts: float | None) -> Timestamp | None:
    if ts is None:
        return None
    message = Timestamp()
    message.FromNanoseconds(round(ts * 1e9))
    return message


def seconds(message: Timestamp) -> float:
    return message.ToNanoseconds() / 1e9


def rule_from_message(message: alert_pb2.AlertRule) -> Rule:
    """The rule as the client gave it; validation fills defaults and finds mistakes."""
    n = message.notify
    notify = Notify(email=tuple(n.email), webhook=n.webhook, slack=n.slack, teams=n.teams,
                    pagerduty=n.pagerduty, sms=tuple(n.sms))
    return Rule(name=message.name, type=message.type, metric=message.metric,
                condition=message.condition, threshold=message.threshold,
                duration_seconds=message.duration_seconds, severity=message.severity,
                notify=notify, secret=message.secret,
                repeat_interval_seconds=message.repeat_interval_seconds,
                keep_firing_seconds=message.keep_firing_seconds,
                recovery_threshold=(message.recovery_threshold
                                    if message.HasField("recovery_threshold") else None),
                on_no_data=message.on_no_data, labels=dict(message.labels),
                description=message.description)


def rule_message(rule: Rule) -> alert_pb2.AlertRule:
    n = rule.notify
    message = alert_pb2.AlertRule(
        name=rule.name, type=rule.type, metric=rule.metric, condition=rule.condition,
        threshold=rule.threshold, duration_seconds=rule.duration_seconds,
        severity=rule.severity,
        # Credential targets are masked: the API never returns them (CONTRACT.md §11).
        notify=alert_pb2.Notify(email=n.email, webhook=n.webhook, slack=mask("slack", n.slack),
                                teams=mask("teams", n.teams),
                                pagerduty=mask("pagerduty", n.pagerduty), sms=n.sms),
        repeat_interval_seconds=rule.repeat_interval_seconds,
        keep_firing_seconds=rule.keep_firing_seconds, on_no_data=rule.on_no_data,
        labels=rule.labels, description=rule.description,
        create_time=timestamp(rule.create_time), update_time=timestamp(rule.update_time),
        has_secret=bool(rule.secret))
    if rule.recovery_threshold is not None:
        message.recovery_threshold = rule.recovery_threshold
    return message


def alert_message(alert: Alert, *, silenced: bool) -> alert_pb2.Alert:
    value = alert.current_value
    return alert_pb2.Alert(
        alert_id=alert.alert_id, rule=alert.rule.name, type=alert.rule.name,
        severity=alert.rule.severity, state=alert.state, message=alert.message,
        triggered_at=timestamp(alert.triggered_at),
        current_value=value if value is not None and math.isfinite(value) else 0.0,
        threshold=alert.rule.threshold, labels=alert.labels, acknowledged=alert.acknowledged,
        acknowledged_by=alert.acknowledged_by, acknowledged_at=timestamp(alert.acknowledged_at),
        notes=alert.notes, silenced=silenced, fingerprint=alert.fingerprint,
        fired_at=timestamp(alert.fired_at), resolved_at=timestamp(alert.resolved_at),
        metric=alert.rule.metric)


def silence_message(silence: Silence, now: float) -> alert_pb2.Silence:
    return alert_pb2.Silence(
        silence_id=silence.silence_id,
        matchers=[alert_pb2.Matcher(name=m.name, value=m.value, is_regex=m.is_regex,
                                    is_negative=m.is_negative) for m in silence.matchers],
        starts_at=timestamp(silence.starts_at), ends_at=timestamp(silence.ends_at),
        created_by=silence.created_by, comment=silence.comment, state=silence.state(now))


def matchers_from_message(message: alert_pb2.Silence) -> list[Matcher]:
    return [Matcher(m.name, m.value, m.is_regex, m.is_negative) for m in message.matchers]


def delivery_message(record: dict[str, Any]) -> alert_pb2.Delivery:
    return alert_pb2.Delivery(
        channel=record["channel"], target=record["target"], kind=record["kind"],
        attempt=record["attempt"], status_code=record["status_code"], error=record["error"],
        success=record["success"], time=timestamp(record["time"]))


def history_message(row: dict[str, Any]) -> alert_pb2.HistoryEntry:
    value = row["value"]
    return alert_pb2.HistoryEntry(
        id=row["id"], alert_id=row["alert_id"], rule=row["rule"], severity=row["severity"],
        kind=row["kind"], from_state=row["from_state"], to_state=row["to_state"],
        value=value if value is not None and math.isfinite(value) else 0.0,
        delivery=delivery_message(row["delivery"]) if row["delivery"] else None,
        time=timestamp(row["time"]), detail=row["detail"])
