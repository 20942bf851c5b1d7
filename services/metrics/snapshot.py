"""The latest figures of the host and the platform, shared by streams, rules and requests.

The application figures are recomputed from the store in the background, one
refresh at a time: when a commit (here, or on another replica via Redis) made
them stale, at most once per ``min_refresh`` seconds, and when they are older
than ``ttl``. Readers get the figures at hand while a refresh runs
(stale-while-revalidate), so continuous ingest costs one refresh per
``min_refresh`` however many streams and requests read. Streams never wait; a
request waits only when there are no figures yet or they are older than ``ttl``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time

from botmon.metrics.v1 import metrics_pb2
from botmon.runtime.errors import Unavailable
from services.metrics import application
from services.metrics.application import ErrorFigures, Figures
from services.metrics.collector import Collector
from services.metrics.error_source import ErrorSource
from services.metrics.messages import application_message, flatten, system_message
from services.metrics.store import MetricsStore
from services.metrics.uptime import Uptime

__all__ = ["Snapshot"]

log = logging.getLogger("botmon.metrics.snapshot")


class Snapshot:
    """Application figures refreshed in the background; see the module's docstring."""

    def __init__(self, collector: Collector, store: MetricsStore, errors: ErrorSource,
                 uptime: Uptime, *, ttl: float, min_refresh: float, idle: float,
                 deadline: float):
        self.collector = collector
        self.store = store
        self.errors = errors
        self.uptime = uptime
        self.ttl = ttl
        self.min_refresh = min_refresh
        self.idle = idle
        self.deadline = deadline
        #: Refreshes started since the service began.
        self.refreshes = 0
        self._figures: tuple[Figures, ErrorFigures] | None = None
        self._values: dict[str, float] = {}
        self._computed_at = -math.inf  # monotonic start of the refresh that made the figures
        self._started_at = -math.inf   # monotonic start of the latest refresh
        self._commits = 0              # commits announced so far
        self._included = 0             # commits the figures include
        self._read_at = -math.inf
        self._task: asyncio.Task | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._failing = False

    def invalidate(self) -> None:
        """Events were committed (here or elsewhere) or the error figures changed:
        refresh soon if anyone reads the figures."""
        self._commits += 1
        # Nobody read them lately: the next reader starts the refresh instead.
        if time.monotonic() - self._read_at < self.ttl:
            self._want()

    def _stale(self) -> bool:
        return (self._included != self._commits
                or time.monotonic() - self._computed_at >= self.ttl)

    def _running(self) -> bool:
        return self._task is not None and not self._task.done()

    def _want(self) -> None:
        """Start a refresh now, or once ``min_refresh`` has passed since the last one."""
        if self._running() or self._timer is not None:
            return
        wait = self._started_at + self.min_refresh - time.monotonic()
        if wait > 0:
            self._timer = asyncio.get_running_loop().call_later(wait, self._start)
        else:
            self._start()

    def _start(self) -> asyncio.Task:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._started_at = time.monotonic()
        self.refreshes += 1
        self._task = asyncio.create_task(self._refresh(self._commits, self._started_at),
                                         name="metrics-figures")
        self._task.add_done_callback(self._refreshed)
        return self._task

    async def _refresh(self, commits: int, started: float) -> tuple[Figures, ErrorFigures]:
        now = time.time()
        try:
            async with asyncio.timeout(self.deadline):
                uptime = await self.uptime.figure(now)
                figures, errors = await asyncio.gather(
                    application.compute(self.store, now, self.idle, uptime),
                    self.errors.figures(now))
        except Exception as exc:
            raise Unavailable(f"the application figures could not be read from the store "
                              f"({exc!r}); retry shortly") from exc
        self._figures = figures, errors
        self._values = flatten(application_message(figures, errors))
        self._computed_at, self._included = started, commits
        return self._figures

    def _refreshed(self, task: asyncio.Task) -> None:
        if task.cancelled():
            return
        failure = task.exception()
        if failure is not None and not self._failing:
            log.warning("refreshing the application figures failed",
                        extra={"error": str(failure)})
        self._failing = failure is not None
        # Commits during the refresh (or a failure) call for the next one, paced as ever.
        if self._stale() and time.monotonic() - self._read_at < self.ttl:
            self._want()

    def current(self) -> tuple[Figures, ErrorFigures] | None:
        """The figures at hand, never waiting; starts a refresh when they are stale."""
        self._read_at = time.monotonic()
        # New error figures, when they differ, mark these stale (ErrorSource.on_change).
        self.errors.poll()
        self.uptime.poll()
        if self._stale():
            self._want()
        return self._figures

    async def application(self) -> tuple[Figures, ErrorFigures]:
        """The figures at hand unless there are none or they are older than ``ttl``;
        then those of a refresh (shared with every other reader waiting)."""
        figures = self.current()
        if figures is not None and time.monotonic() - self._computed_at < self.ttl:
            return figures
        task = self._task if self._running() else self._start()
        return await asyncio.shield(task)

    async def ready(self) -> None:
        """Wait for the first figures (only a service that just started has none)."""
        if self._figures is None:
            await self.application()

    def system(self) -> metrics_pb2.SystemMetrics:
        sample = self.collector.latest
        if sample is None:
            raise Unavailable("the first host sample is not taken yet; retry in a second")
        return system_message(sample)

    def stream_values(self) -> tuple[dict[str, float], float] | None:
        """Every metric of the latest sample and the figures at hand, and the sample's
        time, without waiting; None before the first figures."""
        if self.current() is None:
            return None
        values = flatten(self.system())
        values.update(self._values)
        return values, self.collector.latest.time

    async def values(self) -> tuple[dict[str, float], float]:
        """Every numeric metric by dotted path, and the time of the host sample."""
        await self.application()
        values = flatten(self.system())
        values.update(self._values)
        return values, self.collector.latest.time

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Unavailable):
                await self._task
