"""The status list, kept built in the background so that reading it costs no work.

One task rebuilds it: when asked (a heartbeat or deregistration here, a probe round's
end, a health watcher joining or leaving), when a registration lapses or is dropped, and every ``refresh`` seconds so that
uptimes and memory figures stay within that much of the truth. ``GetStatus`` answers
the last list built, after checking that no registration changed since (through
another replica sharing the registry too); ``WatchStatus`` streams each new list.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from botmon.runtime.errors import Unavailable
from services.health.broadcast import Broadcast
from services.health.registry import Instance
from services.health.status import StatusBoard

__all__ = ["StatusView"]

log = logging.getLogger("botmon.health.status")

#: Seconds between rebuilds when nothing else asks for one.
REFRESH = 1.0

T = TypeVar("T")


@dataclass(frozen=True)
class Built(Generic[T]):
    """One build of the list, rendered."""

    reply: T
    #: The registry's version read before the registrations were.
    version: int | None
    #: When the list goes out of date by the clock: the next lapse or drop, or the refresh.
    valid_until: float
    #: The last request for a rebuild that this build answers.
    generation: int


class StatusView(Generic[T]):
    """The last status list built by ``board`` and rendered by ``render(entries, now)``."""

    def __init__(self, board: StatusBoard, render: Callable[[list[Instance], float], T], *,
                 refresh: float = REFRESH):
        self.board = board
        self.render = render
        self.refresh = refresh
        self._built: Built[T] | None = None
        self._requested = 0
        self._wanted = asyncio.Event()
        self._published: asyncio.Future[None] | None = None
        self._watchers: Broadcast[T] = Broadcast()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="health-status-view")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def changed(self) -> int:
        """Ask for a rebuild that reads the registry after now; returns the request's number."""
        self._requested += 1
        self._wanted.set()
        return self._requested

    async def current(self) -> T:
        """The last list built, rebuilt first if it is out of date: a rebuild was asked for,
        a registration lapsed, or one changed through another replica."""
        built = self._built
        if built is None or built.generation < self._requested:
            built = await self._answering(self._requested)
        elif time.time() >= built.valid_until or await self._version() != built.version:
            built = await self._answering(self.changed())
        return built.reply

    def watch(self) -> AsyncIterator[T]:
        """The last list built (once there is one), then each new one."""
        return self._watchers.watch()

    def end_watches(self) -> None:
        self._watchers.end()

    async def _version(self) -> int | None:
        try:
            return await self.board.registry.version()
        except Unavailable:
            # The list built meanwhile says the registry is unreachable.
            return self._built.version if self._built else None

    async def _answering(self, request: int) -> Built[T]:
        """The first build that answers rebuild request number ``request``."""
        while (built := self._built) is None or built.generation < request:
            if self._published is None or self._published.done():
                self._published = asyncio.get_running_loop().create_future()
            # Shielded: a reader that goes away must not cancel what the others await.
            await asyncio.shield(self._published)
        return built

    async def _run(self) -> None:
        task = asyncio.current_task()
        # redis-py can swallow the cancellation stop() sends while a command is in flight;
        # the request is still counted, so a build that returns ends the loop.
        while not task.cancelling():
            built = self._built
            if built is not None:
                await self._wait_wanted(built.valid_until - time.time())
            self._wanted.clear()
            try:
                built = await self._build(self._requested)
            except Exception as exc:
                log.exception("building the status list failed")
                self._settle(exc)
                await self._wait_wanted(self.refresh)
                continue
            self._built = built
            self._watchers.publish(built.reply)
            self._settle(None)

    async def _wait_wanted(self, seconds: float) -> None:
        """Until a rebuild is asked for, or ``seconds`` pass."""
        # Not wait_for, which (Python 3.11) swallows a cancellation that arrives as the
        # event is set: stop() would then wait forever.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, seconds)):
                await self._wanted.wait()

    async def _build(self, generation: int) -> Built[T]:
        now = time.time()
        version = await self._version()
        entries = await self.board.entries(now)
        valid_until = min(now + self.refresh, self.board.next_change(entries, now))
        return Built(self.render(entries, now), version, valid_until, generation)

    def _settle(self, error: Exception | None) -> None:
        """Wake the readers waiting for a build, with its failure if it failed."""
        published, self._published = self._published, None
        if published is None or published.done():
            return
        if error is None:
            published.set_result(None)
        else:
            published.set_exception(Unavailable(f"the status list could not be built: {error}"))
