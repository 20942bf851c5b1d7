"""The latest figures of the host and the platform, shared by rule evaluation and streams."""

from __future__ import annotations

import asyncio
import time

from botmon.metrics.v1 import metrics_pb2
from botmon.runtime.errors import Unavailable
from services.metrics import application
from services.metrics.application import ErrorFigures, Figures
from services.metrics.collector import Collector
from services.metrics.error_source import ErrorSource
from services.metrics.messages import application_message, flatten, system_message
from services.metrics.store import MetricsStore

__all__ = ["Snapshot"]


class Snapshot:
    """Application figures cached for ``ttl`` seconds unless :meth:`invalidate` is called.

    Concurrent readers of a stale snapshot share one recomputation, so a
    thousand subscribers cost the store one query per tick.
    """

    def __init__(self, collector: Collector, store: MetricsStore, errors: ErrorSource, *,
                 ttl: float, idle: float):
        self.collector = collector
        self.store = store
        self.errors = errors
        self.ttl = ttl
        self.idle = idle
        self._cached: tuple[float, int, Figures, ErrorFigures] | None = None
        self._pending: asyncio.Task | None = None
        self._generation = 0

    def invalidate(self) -> None:
        """Forget the cached figures: new events were committed."""
        self._generation += 1

    async def fresh(self) -> tuple[Figures, ErrorFigures]:
        """Figures computed now, bypassing the cache (and refreshing it)."""
        generation = self._generation
        now = time.time()
        figures, errors = await asyncio.gather(
            application.compute(self.store, now, self.idle), self.errors.figures(now))
        self._cached = (time.monotonic(), generation, figures, errors)
        return figures, errors

    async def application(self) -> tuple[Figures, ErrorFigures]:
        """Cached figures while fresh: younger than ``ttl`` and no commit since."""
        cached = self._cached
        if cached and cached[1] == self._generation and cached[0] > time.monotonic() - self.ttl:
            return cached[2], cached[3]
        if self._pending is None or self._pending.done():
            self._pending = asyncio.ensure_future(self.fresh())
        return await asyncio.shield(self._pending)

    def system(self) -> metrics_pb2.SystemMetrics:
        sample = self.collector.latest
        if sample is None:
            raise Unavailable("the first host sample is not taken yet; retry in a second")
        return system_message(sample)

    async def values(self) -> tuple[dict[str, float], float]:
        """Every numeric metric by dotted path, and the time of the host sample."""
        figures, errors = await self.application()
        values = flatten(self.system())
        flatten(application_message(figures, errors), out=values)
        return values, self.collector.latest.time
