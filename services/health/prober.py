"""Runs every probe in parallel, in the background and on demand, and caches the results."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass

from services.health.aggregation import overall
from services.health.broadcast import Broadcast
from services.health.probes.probe import Probe, describe, elapsed_ms, failed
from services.health.probes.result import ProbeResult

__all__ = ["Prober", "Snapshot"]

log = logging.getLogger("botmon.health.prober")


@dataclass(frozen=True)
class Snapshot:
    """The results of one probe round."""

    results: Mapping[str, ProbeResult]
    status: str
    #: When the round ended, Unix seconds.
    taken_at: float
    #: When the round ended, ``time.monotonic()``; ages are measured against it.
    monotonic: float
    round: int


class Prober:
    """Probes every ``interval`` seconds; a caller finding the cache stale awaits one shared round.

    ``timeout`` bounds each probe: one that overruns is reported unhealthy and left to
    unwind on its own, so no round ever takes much longer than ``timeout``.
    """

    def __init__(self, probes: Mapping[str, Probe], *, interval: float, timeout: float,
                 critical: Collection[str]):
        self.probes = dict(probes)
        self.interval = interval
        self.timeout = timeout
        self.critical = frozenset(critical)
        self.rounds = 0
        #: Called after every round with its snapshot.
        self.on_round: list[Callable[[Snapshot], Awaitable[None]]] = []
        self._snapshot: Snapshot | None = None
        self._round: asyncio.Task | None = None
        self._loop: asyncio.Task | None = None
        self._watchers: Broadcast[Snapshot] = Broadcast()
        self._stragglers: set[asyncio.Task] = set()

    @property
    def ready(self) -> bool:
        """True once the first round has finished."""
        return self._snapshot is not None

    @property
    def snapshot(self) -> Snapshot | None:
        return self._snapshot

    @property
    def watcher_count(self) -> int:
        """Open :meth:`watch` streams."""
        return len(self._watchers)

    def start(self) -> None:
        """Probe in the background until :meth:`stop`."""
        self._loop = asyncio.create_task(self._background(), name="health-prober")

    async def current(self) -> Snapshot:
        """The cached snapshot, refreshed first when it is older than the interval."""
        snapshot = self._snapshot
        if snapshot is None or time.monotonic() - snapshot.monotonic >= self.interval:
            return await self.refresh()
        return snapshot

    async def refresh(self) -> Snapshot:
        """Run a round, or join the one already running (single flight)."""
        if self._round is None or self._round.done():
            self._round = asyncio.create_task(self._run_round(), name="health-probe-round")
        # Shielded: a caller that goes away must not cancel the round others await.
        return await asyncio.shield(self._round)

    def watch(self) -> AsyncIterator[Snapshot]:
        """The current snapshot (once there is one), then each new one."""
        return self._watchers.watch()

    def end_watches(self) -> None:
        """End every :meth:`watch` (on shutdown, so streams do not hold up the drain)."""
        self._watchers.end()

    async def stop(self) -> None:
        """Stop probing and close every probe's connections."""
        tasks = [t for t in (self._loop, self._round, *self._stragglers) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for probe in self.probes.values():
            try:
                await probe.close()
            except Exception:
                log.exception("closing a probe failed")

    async def _background(self) -> None:
        while True:
            try:
                snapshot = await self.current()
                delay = self.interval - (time.monotonic() - snapshot.monotonic)
            except Exception:
                log.exception("probe round failed")
                delay = self.interval
            await asyncio.sleep(max(delay, 0.0))

    async def _run_round(self) -> Snapshot:
        names = list(self.probes)
        results = await asyncio.gather(*(self._probe(name, self.probes[name]) for name in names))
        by_name = dict(zip(names, results, strict=True))
        self.rounds += 1
        previous = self._snapshot.results if self._snapshot else {}
        for name, result in by_name.items():
            if name not in previous or previous[name].status != result.status:
                log.info("%s is %s", name, result.status, extra={"reason": result.reason})
        snapshot = Snapshot(
            results=by_name, status=overall({n: r.status for n, r in by_name.items()},
                                            self.critical),
            taken_at=time.time(), monotonic=time.monotonic(), round=self.rounds)
        self._snapshot = snapshot
        self._watchers.publish(snapshot)
        for hook in self.on_round:
            try:
                await hook(snapshot)
            except Exception:
                log.exception("probe round hook failed")
        return snapshot

    async def _probe(self, name: str, probe: Probe) -> ProbeResult:
        start = time.perf_counter()
        task = asyncio.create_task(probe.check(), name=f"probe-{name}")
        try:
            done, _ = await asyncio.wait({task}, timeout=self.timeout)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if task in done:
            try:
                result = task.result()
            except asyncio.CancelledError:
                result = failed(probe, "cancelled")
            except Exception as exc:
                result = failed(probe, describe(exc))
        else:
            # Not awaited: a probe stuck in a driver must not hold up the round.
            task.cancel()
            self._stragglers.add(task)
            task.add_done_callback(self._forget)
            result = failed(probe, f"timed out after {self.timeout:g}s")
        return dataclasses.replace(result, probe_duration_ms=elapsed_ms(start),
                                   checked_at=time.time())

    def _forget(self, task: asyncio.Task) -> None:
        self._stragglers.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it as lost
