"""Heartbeats that keep a process listed in the health service's status list."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable

import grpc
from google.protobuf import struct_pb2, timestamp_pb2

from botmon import __version__
from botmon.health.v1 import health_service_pb2
from botmon.runtime.channels import Backends

__all__ = ["Registration", "instance_id"]

log = logging.getLogger("botmon.registration")

#: Identifies this process among the replicas of its service.
instance_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Registration:
    """Sends ``Heartbeat`` every ``settings.heartbeat_interval`` until stopped."""

    def __init__(self, backends: Backends, name: str, port: int,
                 details: Callable[[], dict] | None = None):
        self.backends = backends
        self.name = name
        self.port = port
        self.details = details
        self.interval = backends.settings.heartbeat_interval
        self.started = time.time()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"heartbeat-{self.name}")

    async def beat(self) -> None:
        start = timestamp_pb2.Timestamp()
        start.FromNanoseconds(int(self.started * 1e9))
        details = struct_pb2.Struct()
        if self.details:
            details.update(self.details())
        await self.backends.stub("health").Heartbeat(
            health_service_pb2.HeartbeatRequest(
                name=self.name, instance_id=instance_id,
                ttl_seconds=max(3, int(self.interval * 3)), status="running",
                port=self.port, pid=os.getpid(), version=__version__,
                host=socket.gethostname(), start_time=start, details=details),
            timeout=self.backends.deadline)

    async def _run(self) -> None:
        while True:
            try:
                await self.beat()
            except grpc.aio.AioRpcError as exc:
                log.debug("heartbeat to health failed: %s", exc.code().name)
            except Exception:
                log.exception("heartbeat failed")
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await self.backends.stub("health").Deregister(
                health_service_pb2.DeregisterRequest(name=self.name, instance_id=instance_id),
                timeout=0.5)
        except grpc.aio.AioRpcError:
            pass
