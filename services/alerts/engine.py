"""The leader's loop: hold leadership, evaluate every interval, run the dispatcher and pruner.

Every replica runs this loop; only the one that holds leadership evaluates and
notifies. Leadership is checked three times per interval, so a dead leader's
lease or lock is taken over well within two evaluation intervals. The leader's
work (evaluation cycles, the dispatcher, the pruner) runs in tasks of its own:
a slow cycle never delays a renewal (which would let the lease lapse under a
leader that still acts), and a task that dies is logged and started again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from botmon.runtime.errors import Unavailable
from services.alerts.defaults import DEFAULT_RULES
from services.alerts.dispatcher import Dispatcher
from services.alerts.leader import Leadership
from services.alerts.lifecycle import Changes, Evaluator
from services.alerts.metrics_source import MetricsSource
from services.alerts.retention import Pruner
from services.alerts.store import AlertsStore

__all__ = ["Engine"]

log = logging.getLogger("botmon.alerts.engine")


class Engine:
    """Evaluation and notification, done by whichever replica leads."""

    def __init__(self, store: AlertsStore, source: MetricsSource, dispatcher: Dispatcher,
                 leadership: Leadership, evaluator: Evaluator, *, interval: float,
                 metrics_timeout: float, install_defaults: bool, pruner: Pruner | None = None,
                 clock: Callable[[], float] = time.time):
        self.store = store
        self.source = source
        self.dispatcher = dispatcher
        self.leadership = leadership
        self.evaluator = evaluator
        self.interval = interval
        self.metrics_timeout = metrics_timeout
        self.install_defaults = install_defaults
        self.pruner = pruner
        self.clock = clock
        self.leading = False
        self.version = -1
        self.last_cycle_seconds = 0.0
        self.cycles = 0
        self._task: asyncio.Task | None = None
        #: The leader's tasks by name, while this replica leads.
        self._work: dict[str, asyncio.Task] = {}
        self._unreachable_logged = False

    async def start(self) -> None:
        if self.install_defaults and await self.store.install_defaults(DEFAULT_RULES, self.clock()):
            log.info("default alert rules stored", extra={"rules": [r.name for r in DEFAULT_RULES]})
        self._task = asyncio.create_task(self._run(), name="alerts-engine")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self._step_down()
        await self.leadership.release()

    def status(self) -> dict:
        """Figures for /status and /debug/info."""
        return {"leader": self.leading, "leadership": self.leadership.kind,
                "rules": len(self.evaluator.rules), "active_alerts": len(self.evaluator.active),
                "last_cycle_ms": round(self.last_cycle_seconds * 1000, 3), "cycles": self.cycles}

    async def _run(self) -> None:
        """Check leadership three times per interval; start or stop the leader's work."""
        renew_every = self.interval / 3
        loop = asyncio.get_running_loop()
        while True:
            checked = loop.time()
            try:
                if await self._acquire():
                    if not self.leading:
                        self._become_leader()
                    self._revive()
                elif self.leading:
                    log.warning("leadership lost; stopping evaluation and notification")
                    await self._step_down()
            except Exception:
                log.exception("leadership loop failed; checking again")
            await asyncio.sleep(max(0.0, checked + renew_every - loop.time()))

    async def _evaluate(self) -> None:
        """Evaluate every interval while leading."""
        loop = asyncio.get_running_loop()
        next_eval = loop.time()
        while True:
            await self.cycle()
            next_eval += self.interval
            if next_eval < loop.time():
                # A cycle overran the interval: start the next one now, do not pile up.
                next_eval = loop.time()
            await asyncio.sleep(next_eval - loop.time())

    async def _acquire(self) -> bool:
        try:
            return await self.leadership.acquire()
        except Exception:
            # Leadership that cannot be confirmed is not held: better no evaluator than two.
            log.exception("leadership check failed")
            return False

    def _become_leader(self) -> None:
        log.info("leading: evaluating rules and sending notifications",
                 extra={"leadership": self.leadership.kind})
        self.leading = True
        self.version = -1
        for name in self._workers():
            self._start_work(name)

    def _workers(self) -> dict[str, Callable[[], Awaitable[None]]]:
        workers = {"alerts-evaluator": self._evaluate, "alerts-dispatcher": self.dispatcher.run}
        if self.pruner is not None:
            workers["alerts-pruner"] = self.pruner.run
        return workers

    def _start_work(self, name: str) -> None:
        self._work[name] = asyncio.create_task(self._workers()[name](), name=name)

    def _revive(self) -> None:
        """Start again any of the leader's tasks that died, saying why it did."""
        for name, task in list(self._work.items()):
            if task.done():
                error = None if task.cancelled() else task.exception()
                log.error("%s ended; starting it again", name, exc_info=error)
                self.version = -1
                self._start_work(name)

    async def _step_down(self) -> None:
        self.leading = False
        tasks = list(self._work.values())
        self._work.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def cycle(self) -> None:
        """One evaluation cycle: reload what others changed, read metrics, write the changes."""
        started = time.perf_counter()
        try:
            await self._reload_if_changed()
            try:
                values = await self.source.values(self.metrics_timeout)
                if self._unreachable_logged:
                    log.info("metrics service reachable again")
                self._unreachable_logged = False
            except Unavailable as exc:
                if not self._unreachable_logged:
                    log.warning("metrics unreachable; keeping every alert as it is",
                                extra={"error": exc.message})
                self._unreachable_logged = True
                values = None
            await self._write(self.evaluator.evaluate(values, self.clock()))
        except Exception:
            log.exception("evaluation cycle failed; state is reloaded from the store next cycle")
            self.version = -1
        finally:
            self.last_cycle_seconds = time.perf_counter() - started
            self.cycles += 1

    async def _reload_if_changed(self) -> None:
        if self.version >= 0 and await self.store.version() == self.version:
            return
        now = self.clock()
        version, rules, alerts, silences = await self.store.load(now)
        changes = self.evaluator.load(rules, alerts, silences, now)
        self.version = version
        await self._write(changes)

    async def _write(self, changes: Changes) -> None:
        if not changes:
            return
        try:
            if await self.store.apply(changes):
                self.dispatcher.wake()
        except BaseException:
            # Memory ran ahead of the store; the next cycle reloads and redoes the transitions.
            self.version = -1
            raise
