"""The gateway's copy of the suite's health, kept current by the ``WatchHealth`` stream.

``GET /health`` answers from it with no gRPC hop per request. While the stream
is down the snapshot says why, and a snapshot older than ``stale_after``
seconds counts as unhealthy, so the answer is never stale and never hangs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import grpc

from botmon.health.v1 import health_service_pb2
from botmon.runtime.channels import Backends

__all__ = ["HealthSnapshot", "HealthView"]

log = logging.getLogger("botmon.gateway.health")


@dataclass(frozen=True)
class HealthView:
    """What ``GET /health`` reports: the status, and why when it is not known to be fine."""

    status: str
    reason: str
    health: health_service_pb2.GetDetailedHealthResponse | None


class HealthSnapshot:
    """Watches the health service and keeps the latest detailed health."""

    def __init__(self, backends: Backends, *, stale_after: float,
                 min_backoff: float = 0.1, max_backoff: float = 2.0):
        self.backends = backends
        self.stale_after = stale_after
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.latest: health_service_pb2.GetDetailedHealthResponse | None = None
        self.received = 0.0
        self.error = "no health snapshot received yet"
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="gateway-health-watch")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def view(self) -> HealthView:
        """The current status; unhealthy with a reason when the snapshot is missing or old."""
        if self.latest is None or self.error:
            return HealthView("unhealthy", self.error or "no health snapshot yet", self.latest)
        age = time.monotonic() - self.received
        if age > self.stale_after:
            return HealthView("unhealthy", f"health snapshot is {age:.1f}s old "
                                           f"(limit {self.stale_after:g}s)", self.latest)
        return HealthView(self.latest.status or "unhealthy", "", self.latest)

    async def _run(self) -> None:
        backoff = self.min_backoff
        while True:
            call = self.backends.stub("health").WatchHealth(health_service_pb2.WatchHealthRequest())
            try:
                # No message within stale_after means the stream is stuck: start over.
                while True:
                    update = await asyncio.wait_for(call.read(), self.stale_after)
                    if update is grpc.aio.EOF:
                        self.error = "the health service ended the health stream"
                        break
                    if self.error:
                        log.info("health snapshot stream connected")
                    self.latest, self.received, self.error = update.health, time.monotonic(), ""
                    backoff = self.min_backoff
            except TimeoutError:
                self.error = f"no health update within {self.stale_after:g}s"
            except grpc.aio.AioRpcError as exc:
                # Cancelling this task mid-read surfaces as a CANCELLED call: stop, don't retry.
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise asyncio.CancelledError from exc
                reason = f"health service unreachable: {exc.code().name}: {exc.details()}"
                if reason != self.error:
                    log.warning("health snapshot stream failed",
                                extra={"grpc_code": exc.code().name, "detail": exc.details()})
                self.error = reason
            finally:
                call.cancel()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff)
