"""Heartbeats that keep a process listed in the health service's status list."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable

import grpc
import psutil
from google.protobuf import struct_pb2, timestamp_pb2

from botmon import __version__
from botmon.health.v1 import health_service_pb2
from botmon.runtime.channels import Backends

__all__ = ["FIRST_RETRY", "Registration"]

log = logging.getLogger("botmon.registration")

#: The first retry of a first heartbeat that failed at once; it doubles up to the interval.
FIRST_RETRY = 0.2


class Registration:
    """Sends ``Heartbeat`` every ``settings.heartbeat_interval`` until stopped.

    Until the first one lands, each attempt waits for the health service to become
    reachable (and a call that failed at once is retried after 0.2 s, doubling up to the
    interval), so a process started before health is listed as soon as health serves.
    """

    def __init__(self, backends: Backends, name: str, port: int,
                 details: Callable[[], dict] | None = None,
                 status: Callable[[], str] | None = None):
        self.backends = backends
        self.name = name
        self.port = port
        self.details = details
        #: "running" unless given: a process that can degrade says so in each heartbeat.
        self.status = status
        self.interval = backends.settings.heartbeat_interval
        self.instance_id = backends.settings.instance_id
        # The process's own start, not this object's: uptime counts from it.
        self.started = psutil.Process().create_time()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"heartbeat-{self.name}")

    async def beat(self, *, wait_for_ready: bool = False) -> None:
        start = timestamp_pb2.Timestamp()
        start.FromNanoseconds(int(self.started * 1e9))
        details = struct_pb2.Struct()
        if self.details:
            details.update(self.details())
        await self.backends.stub("health").Heartbeat(
            health_service_pb2.HeartbeatRequest(
                name=self.name, instance_id=self.instance_id,
                ttl_seconds=max(3, int(self.interval * 3)),
                status=self.status() if self.status else "running",
                port=self.port, pid=os.getpid(), version=__version__,
                host=socket.gethostname(), start_time=start, details=details),
            timeout=self.backends.deadline, wait_for_ready=wait_for_ready)

    async def _run(self) -> None:
        await self._first()
        while True:
            await asyncio.sleep(self.interval)
            await self._attempt()

    async def _first(self) -> None:
        """Retry until the first heartbeat lands."""
        delay = FIRST_RETRY
        while True:
            started = time.monotonic()
            if await self._attempt(wait_for_ready=True):
                return
            # A call that waited out its deadline for health has been the pause already.
            if time.monotonic() - started < self.backends.deadline / 2:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.interval)

    async def _attempt(self, *, wait_for_ready: bool = False) -> bool:
        try:
            await self.beat(wait_for_ready=wait_for_ready)
        except grpc.aio.AioRpcError as exc:
            log.debug("heartbeat to health failed: %s", exc.code().name)
        except Exception:
            log.exception("heartbeat failed")
        else:
            return True
        return False

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await self.backends.stub("health").Deregister(
                health_service_pb2.DeregisterRequest(name=self.name,
                                                     instance_id=self.instance_id),
                timeout=0.5)
        except grpc.aio.AioRpcError:
            pass
