"""What each gateway worker opens on its own event loop, and closes on stop."""

from __future__ import annotations

import logging

import grpc

from botmon.runtime.channels import Backends
from botmon.runtime.config import Settings
from botmon.runtime.registration import Registration
from gateway.auth import FailedLogins
from gateway.ratelimit import create_limiter
from gateway.readiness import Readiness
from gateway.snapshot import HealthSnapshot, StatusSnapshot
from gateway.transcoding import Route

__all__ = ["Clients"]

log = logging.getLogger("botmon.gateway")

#: Seconds after which the status list from WatchStatus, which sends one at least every
#: second, is not trusted and GET /status makes the call instead.
STATUS_STALE_AFTER = 2.0


class Clients:
    """Backend channels, the rate limiters, the health and status snapshots, readiness and
    the heartbeat."""

    def __init__(self, settings: Settings, *, port: int):
        self.settings = settings
        self.backends = Backends(settings)
        self.limiter = create_limiter(settings)
        self.failed_logins = FailedLogins(self.limiter)
        # Several missed probe rounds (plus a deadline of slack) make the snapshot stale.
        self.snapshot = HealthSnapshot(
            self.backends, stale_after=3 * settings.probe_interval + settings.grpc_deadline)
        self.status = StatusSnapshot(self.backends, stale_after=STATUS_STALE_AFTER)
        self.readiness = Readiness(self.backends)
        self.registration = Registration(self.backends, "gateway", port, self._details)
        self._callables: dict[str, grpc.aio.UnaryUnaryMultiCallable] = {}

    def _details(self) -> dict:
        return {"rate_limiter": self.limiter.backend,
                "rate_limit_backend_down": self.limiter.backend_down,
                "rate_limit_fail_open": self.limiter.fail_open_active}

    def callable(self, route: Route) -> grpc.aio.UnaryUnaryMultiCallable:
        """The cached unary callable of ``route`` on its backend's channel."""
        if route.grpc_path not in self._callables:
            self._callables[route.grpc_path] = route.multicallable(
                self.backends.channel(route.component))
        return self._callables[route.grpc_path]

    def forwarder(self, component: str, path: str, response_deserializer
                  ) -> grpc.aio.UnaryUnaryMultiCallable:
        """The cached unary callable of RPC ``path`` that sends request bytes as they are."""
        if path not in self._callables:
            self._callables[path] = self.backends.channel(component).unary_unary(
                path, request_serializer=None, response_deserializer=response_deserializer)
        return self._callables[path]

    def start(self) -> None:
        self.snapshot.start()
        self.status.start()
        self.registration.start()

    async def close(self) -> None:
        await self.registration.stop()
        await self.snapshot.stop()
        await self.status.stop()
        await self.limiter.close()
        await self.backends.close()
