"""Readiness: can the gateway reach every backend? Asked via ``grpc.health.v1``, cached briefly."""

from __future__ import annotations

import asyncio
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from botmon.runtime.channels import API_SERVICES, SERVICES, Backends

__all__ = ["Readiness"]


class Readiness:
    """``check()`` gives each backend's state; a flood of probes becomes one round per ``ttl``."""

    def __init__(self, backends: Backends, *, timeout: float = 1.0, ttl: float = 1.0):
        self.backends = backends
        self.timeout = min(timeout, backends.deadline)
        self.ttl = ttl
        self._result: dict[str, str] = {}
        self._at = -1e9
        self._lock = asyncio.Lock()

    async def check(self) -> dict[str, str]:
        """Backend name -> "SERVING" or why not."""
        async with self._lock:
            if time.monotonic() - self._at >= self.ttl:
                names = list(API_SERVICES)
                states = await asyncio.gather(*(self._one(n) for n in names))
                self._result, self._at = dict(zip(names, states, strict=True)), time.monotonic()
            return dict(self._result)

    async def _one(self, name: str) -> str:
        stub = health_pb2_grpc.HealthStub(self.backends.channel(name))
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=SERVICES[name][0]),
                                     timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            return f"{exc.code().name}: {exc.details()}"
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
