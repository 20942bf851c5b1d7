"""Retention: entries older than their level's age limit go, then the oldest beyond the size limit.

Runs in the background every ``retention_interval`` seconds. Deletes happen in
transactions of at most ``retention_batch`` entries, with a yield to the event
loop between them, so a commit of new entries never waits behind more than one
small delete. The figures of the last run are kept for ``/status``, with the
stored totals measured at each run and advanced by this replica's commits.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any

from botmon.runtime.periodic import Periodic
from services.logs.config import LogsSettings
from services.logs.levels import LEVELS
from services.logs.store import LogStore

__all__ = ["Retention"]

log = logging.getLogger("botmon.logs.retention")

_DAY_NS = 86_400 * 10**9


class Retention(Periodic):
    """Enforces the age and size limits of ``settings`` on ``store``."""

    def __init__(self, store: LogStore, settings: LogsSettings):
        super().__init__("logs-retention", settings.retention_interval)
        self.store = store
        self.settings = settings
        self.max_age_days = settings.max_age_days()
        self.last_run: dict[str, Any] = {}
        self.stored_entries = 0
        self.stored_bytes = 0

    def failed(self, exc: Exception) -> None:
        log.error("retention run failed", exc_info=exc)
        self.last_run = {**self.last_run, "error": str(exc)}

    async def run_once(self, now: int | None = None) -> None:
        """Enforce both limits once; the run's figures are kept in ``last_run``."""
        started = time.monotonic()
        now = time.time_ns() if now is None else now
        batch = self.settings.retention_batch
        expired: dict[str, int] = {}
        freed_bytes = 0
        for name, days in self.max_age_days.items():
            expired[name] = 0
            while True:
                freed = await self.store.expire(LEVELS[name], now - days * _DAY_NS, batch)
                expired[name] += freed.entries
                freed_bytes += freed.bytes
                if freed.entries < batch:
                    break
                await asyncio.sleep(0)
        entries, size = await self.store.usage()
        dropped = 0
        limit = self.settings.max_bytes
        while limit and size > limit and entries > 0:
            average = size / entries
            freed = await self.store.drop_oldest(min(batch, max(1, math.ceil((size - limit)
                                                                            / average))))
            if not freed.entries:
                break
            dropped += freed.entries
            freed_bytes += freed.bytes
            entries -= freed.entries
            size -= freed.bytes
            await asyncio.sleep(0)
        self.stored_entries, self.stored_bytes = entries, size
        self.last_run = {
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "duration_ms": round((time.monotonic() - started) * 1000, 3),
            "expired_by_age": expired,
            "dropped_for_size": dropped,
            "freed_bytes": freed_bytes,
        }
        if dropped or any(expired.values()):
            log.info("retention deleted entries", extra=self.last_run)

    def added(self, entries: int, size: int) -> None:
        """Count entries this replica committed since the last run into the stored figures."""
        self.stored_entries += entries
        self.stored_bytes += size

    def report(self) -> dict[str, Any]:
        """The ``Retention`` message's fields as plain data, for the status heartbeat."""
        return {
            "max_age_days": dict(self.max_age_days),
            "max_bytes": self.settings.max_bytes,
            "stored_entries": self.stored_entries,
            "stored_bytes": self.stored_bytes,
            "interval_seconds": self.settings.retention_interval,
            "last_run": dict(self.last_run),
        }
