"""The gateway's copies of the suite's health and status list, kept current by the health
service's ``WatchHealth`` and ``WatchStatus`` streams.

``GET /health`` and ``GET /status`` answer from them with no gRPC hop per request.
While a stream is down its copy says why, and a copy older than ``stale_after``
seconds is not trusted: ``/health`` then reports unhealthy, ``/status`` makes the call
instead. So an answer is never stale and never hangs.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from botmon.health.v1 import health_service_pb2
from botmon.runtime.channels import Backends
from gateway.transcoding import Route, render

__all__ = ["HealthSnapshot", "HealthView", "StatusSnapshot"]

log = logging.getLogger("botmon.gateway.health")

T = TypeVar("T")


class Follower(abc.ABC):
    """Follows one server-streaming RPC of the health service and keeps its latest message."""

    #: What the stream carries, in reasons and log lines: "health", "status".
    what = ""

    def __init__(self, backends: Backends, *, stale_after: float,
                 min_backoff: float = 0.1, max_backoff: float = 2.0):
        self.backends = backends
        self.stale_after = stale_after
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.latest: Message | None = None
        #: The latest message and what :meth:`_once` rendered of it.
        self._rendered: tuple[Message, Any] | None = None
        self.received = 0.0
        self.error = f"no {self.what} snapshot received yet"
        self._task: asyncio.Task | None = None

    @abc.abstractmethod
    def _open(self) -> grpc.aio.UnaryStreamCall:
        """Start the stream."""

    @abc.abstractmethod
    def _unpack(self, update: Message) -> Message:
        """The message to keep from one the stream sent."""

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"gateway-{self.what}-watch")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def _once(self, render: Callable[[], T]) -> T:
        """``render()`` of the latest message, called once per message received."""
        if self._rendered is None or self._rendered[0] is not self.latest:
            self._rendered = (self.latest, render())
        return self._rendered[1]

    def problem(self) -> str:
        """Why the latest message is not to be trusted now; empty when it is."""
        if self.latest is None or self.error:
            return self.error or f"no {self.what} snapshot yet"
        age = time.monotonic() - self.received
        if age > self.stale_after:
            return f"{self.what} snapshot is {age:.1f}s old (limit {self.stale_after:g}s)"
        return ""

    async def _run(self) -> None:
        backoff = self.min_backoff
        while True:
            call = self._open()
            try:
                # No message within stale_after means the stream is stuck: start over.
                while True:
                    # Not wait_for, which (Python 3.11) swallows a cancellation that
                    # arrives as a message does: stop() would then wait forever.
                    async with asyncio.timeout(self.stale_after):
                        update = await call.read()
                    if update is grpc.aio.EOF:
                        self.error = f"the health service ended the {self.what} stream"
                        break
                    if self.error:
                        log.info("%s snapshot stream connected", self.what)
                    self.latest, self.received, self.error = (self._unpack(update),
                                                              time.monotonic(), "")
                    backoff = self.min_backoff
            except TimeoutError:
                self.error = f"no {self.what} update within {self.stale_after:g}s"
            except grpc.aio.AioRpcError as exc:
                # Cancelling this task mid-read surfaces as a CANCELLED call: stop, don't retry.
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise asyncio.CancelledError from exc
                reason = f"health service unreachable: {exc.code().name}: {exc.details()}"
                if reason != self.error:
                    log.warning("%s snapshot stream failed", self.what,
                                extra={"grpc_code": exc.code().name, "detail": exc.details()})
                self.error = reason
            finally:
                call.cancel()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff)


@dataclass(frozen=True)
class HealthView:
    """What ``GET /health`` reports: the status, and why when it is not known to be fine."""

    status: str
    reason: str
    health: health_service_pb2.GetDetailedHealthResponse | None


class HealthSnapshot(Follower):
    """The latest detailed health, from ``WatchHealth``."""

    what = "health"

    def _open(self) -> grpc.aio.UnaryStreamCall:
        return self.backends.stub("health").WatchHealth(health_service_pb2.WatchHealthRequest())

    def _unpack(self, update: Message) -> Message:
        return update.health

    def view(self) -> HealthView:
        """The current status; unhealthy with a reason when the snapshot is missing or old."""
        problem = self.problem()
        if problem:
            return HealthView("unhealthy", problem, self.latest)
        return HealthView(self.latest.status or "unhealthy", "", self.latest)

    def rendered(self, render: Callable[[HealthView], T]) -> T:
        """``render(self.view())``, rendered once per update while the snapshot is trusted;
        a view with a reason is rendered each time (it tells of now)."""
        view = self.view()
        return render(view) if view.reason else self._once(lambda: render(view))


class StatusSnapshot(Follower):
    """The latest status list, from ``WatchStatus``, rendered once per update."""

    what = "status"

    def _open(self) -> grpc.aio.UnaryStreamCall:
        return self.backends.stub("health").WatchStatus(health_service_pb2.WatchStatusRequest())

    def _unpack(self, update: Message) -> Message:
        return update.status

    def body(self, route: Route) -> bytes | None:
        """The JSON body of ``route`` (``GET /status``) from the latest list; None when that
        list is missing or older than ``stale_after``."""
        if self.problem():
            return None
        return self._once(lambda: render(route, self.latest).body)
