"""Settings of the export service beyond the suite's (read once, frozen).

Each destination declares its own settings beside its sink (``sinks/<name>.py``);
:data:`SINK_SETTINGS` lists them so that ``botmon up`` checks them and ``make
readme`` documents them with the others.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from botmon.runtime.config import EnvSettings, positive_float, positive_int, setting
from services.export.sinks import settings_classes

__all__ = ["SINK_SETTINGS", "ExportSettings", "parse_duration"]

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(raw: str) -> float:
    """Seconds from ``90``, ``45s``, ``30m``, ``24h`` or ``7d``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", raw.lower())
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"expected a duration like 3600, 30m, 24h or 7d, got {raw!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def read_page(raw: str) -> int:
    value = positive_int(raw)
    if value > 10_000:
        raise ValueError(f"must be at most 10000, got {raw!r}")
    return value


@dataclass(frozen=True)
class ExportSettings(EnvSettings):
    """Schedule, batching and retry tuning of the export loop."""

    interval: float = setting(
        "BOTMON_EXPORT_INTERVAL", 60.0, positive_float,
        doc="seconds between two exports of the metric catalogue; a destination failing for "
            "longer than two intervals degrades the export component")
    max_age: float = setting(
        "BOTMON_EXPORT_MAX_AGE", 86400.0, parse_duration,
        doc="log entries older than this (e.g. 24h, 30m) are skipped and counted, not sent")
    linger: float = setting(
        "BOTMON_EXPORT_LINGER", 0.5, positive_float,
        doc="seconds a batch that is not full waits for more entries before it is sent")
    poll: float = setting(
        "BOTMON_EXPORT_POLL", 0.25, positive_float,
        doc="seconds between reads of the logs store when a destination has caught up")
    retry_initial: float = setting(
        "BOTMON_EXPORT_RETRY_INITIAL", 0.5, positive_float,
        doc="seconds before the first resend; doubles per attempt, with full jitter")
    retry_max: float = setting(
        "BOTMON_EXPORT_RETRY_MAX", 30.0, positive_float,
        doc="longest wait between two resends, in seconds (a longer Retry-After is honoured)")
    send_timeout: float = setting(
        "BOTMON_EXPORT_SEND_TIMEOUT", 10.0, positive_float,
        doc="seconds one send to a destination may take")
    lease_ttl: float = setting(
        "BOTMON_EXPORT_LEASE_TTL", 30.0, positive_float,
        doc="seconds a replica's lease on a destination lasts unless renewed (every third of it)")
    read_page: int = setting(
        "BOTMON_EXPORT_READ_PAGE", 5000, read_page,
        doc="log entries read from the logs service per call (at most 10000)")


#: Every destination's settings class, for ``botmon up`` and the README.
SINK_SETTINGS = settings_classes()
