"""Group commit: batches from concurrent callers merged into one store transaction.

A caller's ``await ingestor.submit(batch)`` returns only after the transaction
holding its batch has committed, so an acknowledged event is never lost; while
one transaction runs, the batches that arrive meanwhile gather for the next.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from botmon.runtime.errors import Unavailable
from services.metrics.buckets import Batch
from services.metrics.store import MetricsStore

__all__ = ["Ingestor"]

log = logging.getLogger("botmon.metrics.ingest")


class Ingestor:
    """Writes submitted batches to ``store``, up to ``max_events`` per transaction."""

    def __init__(self, store: MetricsStore, *, max_events: int = 50_000,
                 on_commit: Callable[[Batch], None] | None = None):
        self.store = store
        self.max_events = max_events
        self.on_commit = on_commit
        self._pending: deque[tuple[Batch, asyncio.Future]] = deque()
        self._closing = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.transactions = 0

    def start(self) -> None:
        self._closing = False
        self._task = asyncio.create_task(self._run(), name="metrics-ingest")

    def submit(self, batch: Batch) -> asyncio.Future:
        """Queue ``batch``; the future resolves once it is committed (or fails with why)."""
        future = asyncio.get_running_loop().create_future()
        if self._task is None or self._closing:
            future.set_exception(RuntimeError("the metrics ingestor is stopped"))
            return future
        self._pending.append((batch, future))
        self._wake.set()
        return future

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            while self._pending:
                await self._flush_some()
            if self._closing:
                return
            await self._wake.wait()

    async def _flush_some(self) -> None:
        # The first batch becomes the merged one: its submitter no longer reads it.
        merged, future = self._pending.popleft()
        futures = [future]
        while self._pending and merged.events < self.max_events:
            batch, future = self._pending.popleft()
            merged.merge(batch)
            futures.append(future)
        try:
            await self.store.write(merged)
        except Exception as exc:
            log.error("store write failed", extra={"error": repr(exc), "events": merged.events})
            failure = Unavailable(f"the metrics store could not be written ({exc}); "
                                  "nothing of this batch was stored, retry it")
            for future in futures:
                if not future.done():
                    future.set_exception(failure)
            return
        self.transactions += 1
        for future in futures:
            if not future.done():
                future.set_result(None)
        if self.on_commit is not None:
            self.on_commit(merged)

    async def stop(self) -> None:
        """Write what is pending, then stop."""
        if self._task is None:
            return
        self._closing = True
        self._wake.set()
        await self._task
        self._task = None
