"""Reports a supervised child's death to the health service, on the child's behalf.

A child killed with SIGKILL cannot deregister itself; without this report its
registration would stay "running", with a dead pid, until its heartbeat TTL lapsed.
"""

from __future__ import annotations

import grpc

from botmon.health.v1 import health_service_pb2
from botmon.runtime.channels import Backends
from botmon.runtime.config import Settings
from botmon.runtime.supervisor import Component

__all__ = ["ExitReporter"]


class ExitReporter:
    """An ``on_exit`` hook of the supervisor: the dead instance is listed as stopped at once."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._backends: Backends | None = None

    async def __call__(self, component: Component, instance_id: str) -> None:
        if self._backends is None:
            self._backends = Backends(self.settings)
        try:
            # Waits for health when it is the one that died: its replacement may share
            # the registry (Redis) and still list the dead instance.
            await self._backends.stub("health").Deregister(
                health_service_pb2.DeregisterRequest(name=component.name,
                                                     instance_id=instance_id,
                                                     retain_as_stopped=True),
                timeout=self._backends.deadline, wait_for_ready=True)
        except grpc.aio.AioRpcError as exc:
            # NOT_FOUND: it died before its first heartbeat, or with the registry it held.
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise RuntimeError(f"{exc.code().name}: {exc.details()}") from None

    async def close(self) -> None:
        if self._backends is not None:
            await self._backends.close()
