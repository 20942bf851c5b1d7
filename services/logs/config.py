"""Settings of the logs service beyond the suite's own (CONTRACT.md §2)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from botmon.runtime.config import EnvSettings, positive_float, positive_int, setting
from services.logs.levels import NAMES

__all__ = ["LogsSettings", "parse_retention", "parse_size"]

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9,
          "gb": 10**9, "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30,
          "tib": 2**40}


def parse_retention(raw: str) -> tuple[tuple[str, int], ...]:
    """Parse ``debug=3d,info=14d,default=30d`` (days; a bare ``30d`` sets the default)."""
    days: dict[str, int] = {"default": 30}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        name, sep, value = part.rpartition("=")
        name = name.strip().lower() if sep else "default"
        if name not in (*NAMES, "default"):
            raise ValueError(f"level must be one of {', '.join(NAMES)} or default, got {name!r}")
        value = value.strip().lower().removesuffix("d")
        if not value.isdecimal() or int(value) <= 0:
            raise ValueError(f"expected a whole number of days like 14d for {name}, got {part!r}")
        days[name] = int(value)
    return tuple(sorted(days.items()))


def parse_size(raw: str) -> int:
    """Parse a byte size: ``0`` (no limit), ``500000000``, ``500MB``, ``2GiB``."""
    match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", raw)
    if not match or match.group(2).lower() not in _UNITS:
        raise ValueError(f"expected a size like 0, 500MB or 2GiB, got {raw!r}")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


@dataclass(frozen=True)
class LogsSettings(EnvSettings):
    """Retention, group commit, tail and store knobs of the logs service."""

    retention: tuple[tuple[str, int], ...] = setting(
        "BOTMON_LOG_RETENTION", (("default", 30),), parse_retention,
        doc="days kept per level, e.g. debug=3d,info=14d,default=30d")
    max_bytes: int = setting(
        "BOTMON_LOG_MAX_BYTES", 0, parse_size,
        doc="largest store size (e.g. 5GB); oldest entries go first; 0 for no limit")
    retention_interval: float = setting(
        "BOTMON_LOG_RETENTION_INTERVAL", 60.0, positive_float,
        doc="seconds between background retention runs")
    retention_batch: int = setting(
        "BOTMON_LOG_RETENTION_BATCH", 2000, positive_int,
        doc="entries deleted per transaction by retention, so ingest never waits long")
    commit_max_rows: int = setting(
        "BOTMON_LOG_COMMIT_MAX_ROWS", 50_000, positive_int,
        doc="entries of concurrent batches merged into one durable commit at most")
    tail_buffer: int = setting(
        "BOTMON_LOG_TAIL_BUFFER", 1000, positive_int,
        doc="entries buffered per live tail before the oldest are dropped")
    fanout_channel: str | None = setting(
        "BOTMON_LOG_FANOUT_CHANNEL", None,
        doc="Redis pub/sub channel that carries new entries to tails on other replicas; "
            "default `botmon:N:logs:tail`, N being the database number of BOTMON_REDIS_URL")
    sqlite_readers: int = setting(
        "BOTMON_LOG_SQLITE_READERS", 2, positive_int,
        doc="SQLite read connections (each on its own thread) serving queries")
    postgres_pool_size: int = setting(
        "BOTMON_LOG_PG_POOL", 4, positive_int,
        doc="PostgreSQL connections of one logs replica")

    def max_age_days(self) -> dict[str, int]:
        """Days kept for each stored level."""
        days = dict(self.retention)
        return {name: days.get(name, days["default"]) for name in NAMES}
