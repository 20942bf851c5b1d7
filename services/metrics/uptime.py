"""The platform's uptime, from the start times of the services registered with health.

``uptime_seconds`` counts from the start of the longest-running live instance of
the platform: a registered service (heartbeat within its TTL) that is not one of
botmon's own components, or one of ``BOTMON_PLATFORM_SERVICES`` when that is set.
With none, it is botmon's own uptime (its longest-running live component, or this
process). The registrations are read from the health service in the background,
at most every ``interval`` seconds while the figure is read, like the error figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable

import grpc
import psutil

from botmon.health.v1 import health_service_pb2
from botmon.runtime.channels import SERVICES, Backends, call_metadata

__all__ = ["SUITE", "Uptime"]

log = logging.getLogger("botmon.metrics.uptime")

#: botmon's own components, as they register with health.
SUITE = ("gateway", *SERVICES)
#: Statuses of a live instance.
_LIVE = ("running", "degraded")
_MAX_WAIT = 2.0
#: How long the very first read waits for the health service.
_FIRST_WAIT = 0.5


class Uptime:
    """``await figure(now)`` -> (seconds, "platform" | "botmon"); see the module's docstring."""

    def __init__(self, backends: Backends, *, interval: float, platform: tuple[str, ...],
                 on_change: Callable[[], None]):
        self.backends = backends
        self.interval = interval
        self.platform = frozenset(platform)
        self.on_change = on_change
        #: This process's start: botmon's uptime while the health service does not answer.
        self.started = psutil.Process().create_time()
        #: Start of the longest-running live platform instance, as last read; None if none.
        self.platform_start: float | None = None
        #: Start of the longest-running live botmon component, as last read.
        self.botmon_start: float | None = None
        self._attempted = -math.inf
        self._task: asyncio.Task | None = None
        self._waited = False

    def counts(self, name: str) -> bool:
        """Whether a registration named ``name`` is an instance of the platform."""
        if self.platform:
            return name in self.platform
        return name not in SUITE and not name.startswith("export")

    def poll(self) -> None:
        """Start a read in the background if the last one is ``interval`` old."""
        if time.monotonic() - self._attempted >= self.interval and not self._reading():
            self._attempted = time.monotonic()
            self._task = asyncio.create_task(self._read(), name="metrics-uptime")

    async def figure(self, now: float) -> tuple[int, str]:
        """Seconds of uptime at ``now`` and what they measure."""
        self.poll()
        if not self._waited and self._reading():
            self._waited = True
            await asyncio.wait({self._task}, timeout=_FIRST_WAIT)
        if self.platform_start is not None:
            return int(max(0.0, now - self.platform_start)), "platform"
        start = min(self.started, self.botmon_start or math.inf)
        return int(max(0.0, now - start)), "botmon"

    def _reading(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _read(self) -> None:
        try:
            reply = await self.backends.stub("health").GetStatus(
                health_service_pb2.GetStatusRequest(),
                timeout=min(self.backends.deadline, _MAX_WAIT), metadata=call_metadata())
        except grpc.aio.AioRpcError as exc:
            # Keep what was read last: a health blip does not flip the source.
            log.debug("registrations not read", extra={"code": exc.code().name})
            return
        platform, botmon = [], []
        for entry in reply.services:
            if not (entry.instance_id and entry.status in _LIVE and entry.HasField("start_time")):
                continue
            start = entry.start_time.ToNanoseconds() / 1e9
            if self.counts(entry.name):
                platform.append(start)
            elif entry.name in SUITE:
                botmon.append(start)
        found = (min(platform, default=None), min(botmon, default=None))
        if found != (self.platform_start, self.botmon_start):
            self.platform_start, self.botmon_start = found
            self.on_change()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
