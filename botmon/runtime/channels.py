"""gRPC channels to the suite's services: one per backend per event loop, with retries."""

from __future__ import annotations

import json

import grpc

from botmon.alerts.v1 import alerts_service_pb2_grpc
from botmon.debug.v1 import debug_service_pb2_grpc
from botmon.health.v1 import health_service_pb2_grpc
from botmon.logs.v1 import logs_service_pb2_grpc
from botmon.metrics.v1 import metrics_service_pb2_grpc
from botmon.runtime.config import Settings
from botmon.runtime.context import REQUEST_ID_HEADER, request_id

__all__ = ["SERVICES", "Backends", "call_metadata", "open_channel"]

#: The suite's gRPC services: component name -> (full service name, stub class).
SERVICES = {
    "health": ("botmon.health.v1.HealthService", health_service_pb2_grpc.HealthServiceStub),
    "metrics": ("botmon.metrics.v1.MetricsService", metrics_service_pb2_grpc.MetricsServiceStub),
    "alerts": ("botmon.alerts.v1.AlertsService", alerts_service_pb2_grpc.AlertsServiceStub),
    "logs": ("botmon.logs.v1.LogsService", logs_service_pb2_grpc.LogsServiceStub),
}

# Retries are declared here, as data, and done by gRPC itself: only UNAVAILABLE is
# retried, on another replica when there is one. That is almost always a call that never
# reached a service; a replica that dies after committing a write but before answering
# makes the retry apply it twice, so writes during a failover are at least once.
_SERVICE_CONFIG = json.dumps({
    "loadBalancingConfig": [{"round_robin": {}}],
    "methodConfig": [{
        "name": [{"service": name} for name, _ in SERVICES.values()]
        + [{"service": "botmon.debug.v1.DebugService"},
           # Served by the logs service beside its own, for log shippers.
           {"service": "opentelemetry.proto.collector.logs.v1.LogsService"},
           {"service": "botmon.loki.v1.PushService"}],
        "retryPolicy": {
            "maxAttempts": 3,
            "initialBackoff": "0.05s",
            "maxBackoff": "0.5s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        },
    }],
})

_OPTIONS = [
    ("grpc.service_config", _SERVICE_CONFIG),
    ("grpc.enable_retries", 1),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    # Reconnect quickly after a backend restarts instead of backing off for minutes: a
    # process started before the health service must be listed within a second of it.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
    # Each channel owns its connections. With gRPC's process-wide subchannel pool a new
    # channel to an address that refused an earlier one inherits that connection's
    # reconnect backoff and fails at once although a server listens there now.
    ("grpc.use_local_subchannel_pool", 1),
]


def open_channel(target: str) -> grpc.aio.Channel:
    """Open an insecure channel to ``target`` (``host:port`` or ``dns:///host:port``)."""
    return grpc.aio.insecure_channel(target, options=_OPTIONS)


def call_metadata() -> tuple[tuple[str, str], ...]:
    """Metadata that carries the current request id into the next hop."""
    rid = request_id.get()
    return ((REQUEST_ID_HEADER, rid),) if rid else ()


class Backends:
    """Stubs of the suite's services, each over one channel opened on first use.

    Create and use it on one event loop; ``close()`` it on that loop.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self.deadline = settings.grpc_deadline
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[str, object] = {}

    def channel(self, service: str) -> grpc.aio.Channel:
        if service not in self._channels:
            self._channels[service] = open_channel(self.settings.target(service))
        return self._channels[service]

    def stub(self, service: str):
        """The service's stub, e.g. ``stub("logs").ListLogs(req, timeout=...)``."""
        if service not in self._stubs:
            self._stubs[service] = SERVICES[service][1](self.channel(service))
        return self._stubs[service]

    def debug_stub(self, service: str) -> debug_service_pb2_grpc.DebugServiceStub:
        return debug_service_pb2_grpc.DebugServiceStub(self.channel(service))

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
        self._stubs.clear()
