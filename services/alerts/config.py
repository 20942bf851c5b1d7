"""Settings of the alerts service beyond the suite's (read once, frozen)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from botmon.runtime.config import EnvSettings, parse_bool, positive_float, positive_int, setting
from services.alerts.destinations import DestinationPolicy

__all__ = ["AlertsSettings"]


def non_negative_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"expected a number, got {raw!r}") from None
    if not value >= 0:
        raise ValueError(f"must be 0 or more, got {raw!r}")
    return value


@dataclass(frozen=True)
class AlertsSettings(EnvSettings):
    """Notification, outbox and leadership tuning of the alerts service."""

    default_rules: bool = setting(
        "BOTMON_ALERT_DEFAULT_RULES", True, parse_bool,
        doc="store the shipped default rules on first start (never re-created once deleted)")
    notify_timeout: float = setting(
        "BOTMON_ALERT_NOTIFY_TIMEOUT", 10.0, positive_float,
        doc="seconds one delivery attempt to one channel may take")
    notify_attempts: int = setting(
        "BOTMON_ALERT_NOTIFY_ATTEMPTS", 8, positive_int,
        doc="delivery attempts per notification before it is given up")
    retry_initial: float = setting(
        "BOTMON_ALERT_RETRY_INITIAL", 1.0, positive_float,
        doc="seconds before the first retry; doubles per attempt, with full jitter")
    retry_max: float = setting(
        "BOTMON_ALERT_RETRY_MAX", 300.0, positive_float,
        doc="longest wait between two delivery attempts, in seconds")
    group_wait: float = setting(
        "BOTMON_ALERT_GROUP_WAIT", 0.0, non_negative_float,
        doc="seconds a new firing notification waits in the outbox before it is sent")
    dispatch_poll: float = setting(
        "BOTMON_ALERT_DISPATCH_POLL", 1.0, positive_float,
        doc="seconds between outbox scans for work written by other replicas")
    unreachable_grace: float = setting(
        "BOTMON_ALERT_UNREACHABLE_GRACE", 60.0, non_negative_float,
        doc="seconds the metrics service may be unreachable before botmon_metrics_unreachable fires")
    history_retention: float = setting(
        "BOTMON_ALERT_HISTORY_RETENTION", 90.0, positive_float,
        doc="days history entries, resolved alerts and expired silences are kept; fractions "
            "allowed (0.5 = 12 hours)")
    smtp_ca_file: Path | None = setting(
        "BOTMON_SMTP_CA_FILE", None, Path,
        doc="PEM bundle that verifies the SMTP server's STARTTLS certificate (default: system CAs)")
    webhook_allow: DestinationPolicy = setting(
        "BOTMON_WEBHOOK_ALLOW", DestinationPolicy(), DestinationPolicy.parse,
        doc="destinations rules may notify beyond public addresses: CIDRs, host names, "
            "*.domain; a leading ! denies (see services/alerts/destinations.py)")
    external_url: str | None = setting(
        "BOTMON_ALERT_EXTERNAL_URL", None,
        doc="base URL put in webhook payloads (externalURL, generatorURL); default the gateway's")
