"""History retention: the leader deletes what is older than BOTMON_ALERT_HISTORY_RETENTION.

Deletion goes in small batches, each its own short transaction, so pruning a
large backlog never holds the store long enough to delay an evaluation cycle.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from services.alerts.store import AlertsStore

__all__ = ["BATCH", "Pruner"]

log = logging.getLogger("botmon.alerts.retention")

#: Rows of one kind deleted per transaction.
BATCH = 500
DAY = 86400.0


class Pruner:
    """Runs while this replica leads; one pass every ``period`` seconds."""

    def __init__(self, store: AlertsStore, *, retention_days: float, period: float,
                 batch: int = BATCH, clock: Callable[[], float] = time.time):
        self.store = store
        self.retention = retention_days * DAY
        self.period = period
        self.batch = batch
        self.clock = clock

    async def run(self) -> None:
        """Prune until cancelled."""
        while True:
            try:
                await self.prune()
            except Exception:
                log.exception("history pruning failed; retrying next period")
            await asyncio.sleep(self.period)

    async def prune(self) -> int:
        """Delete everything past retention, a batch at a time; returns the rows deleted."""
        cutoff = self.clock() - self.retention
        total = 0
        while True:
            deleted = await self.store.prune(cutoff, self.batch)
            total += deleted
            if deleted < self.batch:
                break
            await asyncio.sleep(0)  # let an evaluation cycle waiting for the store go first
        if total:
            log.info("pruned alert history", extra={"rows": total, "before": cutoff})
        return total
