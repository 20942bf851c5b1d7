"""gRPC channels to the suite's services: one per backend per event loop, with retries."""

from __future__ import annotations

import json

import grpc

from botmon.alerts.v1 import alerts_service_pb2_grpc
from botmon.debug.v1 import debug_service_pb2_grpc
from botmon.export.v1 import export_service_pb2_grpc
from botmon.health.v1 import health_service_pb2_grpc
from botmon.logs.v1 import logs_service_pb2_grpc
from botmon.metrics.v1 import metrics_service_pb2_grpc
from botmon.runtime.config import Settings
from botmon.runtime.context import REQUEST_ID_HEADER, request_id
from botmon.runtime.credentials import internal_token
from botmon.runtime.tls import channel_credentials, uses_tls

__all__ = ["API_SERVICES", "SERVICES", "Backends", "BearerChannel", "call_metadata",
           "open_channel"]

#: The suite's gRPC services: component name -> (full service name, stub class).
SERVICES = {
    "health": ("botmon.health.v1.HealthService", health_service_pb2_grpc.HealthServiceStub),
    "metrics": ("botmon.metrics.v1.MetricsService", metrics_service_pb2_grpc.MetricsServiceStub),
    "alerts": ("botmon.alerts.v1.AlertsService", alerts_service_pb2_grpc.AlertsServiceStub),
    "logs": ("botmon.logs.v1.LogsService", logs_service_pb2_grpc.LogsServiceStub),
    "export": ("botmon.export.v1.ExportService", export_service_pb2_grpc.ExportServiceStub),
}

#: The services behind the REST API. Export runs beside them: no request needs it, so the
#: gateway's readiness does not wait for it.
API_SERVICES = ("health", "metrics", "alerts", "logs")

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


class _WithBearer:
    """A multicallable whose calls carry ``pair`` after the caller's own metadata."""

    __slots__ = ("_call", "_pair")

    def __init__(self, call, pair: tuple[str, str]):
        self._call = call
        self._pair = pair

    def __call__(self, *args, metadata=None, **kwargs):
        return self._call(*args, metadata=(*(metadata or ()), self._pair), **kwargs)


class BearerChannel:
    """A ``grpc.aio.Channel`` whose every call carries ``authorization: Bearer <token>``.

    The multicallables it makes add the pair to each call's metadata. A client interceptor
    would do the same at the cost of an extra task per call (about 100 µs of CPU a unary
    call, a third more than the call itself).
    """

    def __init__(self, channel: grpc.aio.Channel, token: str):
        self._channel = channel
        self._pair = ("authorization", f"Bearer {token}")

    def unary_unary(self, *args, **kwargs) -> _WithBearer:
        return _WithBearer(self._channel.unary_unary(*args, **kwargs), self._pair)

    def unary_stream(self, *args, **kwargs) -> _WithBearer:
        return _WithBearer(self._channel.unary_stream(*args, **kwargs), self._pair)

    def stream_unary(self, *args, **kwargs) -> _WithBearer:
        return _WithBearer(self._channel.stream_unary(*args, **kwargs), self._pair)

    def stream_stream(self, *args, **kwargs) -> _WithBearer:
        return _WithBearer(self._channel.stream_stream(*args, **kwargs), self._pair)

    def __getattr__(self, name: str):
        # close, get_state, channel_ready, wait_for_state_change: the channel's own.
        return getattr(self._channel, name)

    async def __aenter__(self) -> BearerChannel:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self._channel.close()


def open_channel(target: str, settings: Settings | None = None, *,
                 token: str | None = None) -> grpc.aio.Channel | BearerChannel:
    """A channel to ``target`` (``host:port`` or ``dns:///host:port``).

    With ``settings`` it speaks TLS when the suite does (verifying ``BOTMON_TLS_CA``);
    with ``token`` every call carries it as a bearer credential.
    """
    if settings is not None and uses_tls(settings):
        channel = grpc.aio.secure_channel(target, channel_credentials(settings), options=_OPTIONS)
    else:
        channel = grpc.aio.insecure_channel(target, options=_OPTIONS)
    return BearerChannel(channel, token) if token else channel


def call_metadata() -> tuple[tuple[str, str], ...]:
    """Metadata that carries the current request id into the next hop."""
    rid = request_id.get()
    return ((REQUEST_ID_HEADER, rid),) if rid else ()


class Backends:
    """Stubs of the suite's services, each over one authenticated channel opened on first use.

    Create and use it on one event loop; ``close()`` it on that loop.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self.deadline = settings.grpc_deadline
        # Every call between the suite's processes carries the internal credential.
        self.token = internal_token(settings)
        self._channels: dict[str, grpc.aio.Channel | BearerChannel] = {}
        self._stubs: dict[str, object] = {}

    def channel(self, service: str) -> grpc.aio.Channel | BearerChannel:
        if service not in self._channels:
            self._channels[service] = open_channel(self.settings.target(service), self.settings,
                                                   token=self.token)
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
