"""OTLP over gRPC (the collector services of opentelemetry-proto) and over HTTP/protobuf.

Failures become :class:`SinkError`: retryable per the OTLP specification's
lists (plus authentication and routing errors over HTTP, which an operator
fixes without the data being lost), with the server's ``Retry-After`` or
``RetryInfo`` delay when it gives one.
"""

from __future__ import annotations

import gzip
from urllib.parse import urlsplit

import aiohttp
import grpc
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

from services.export.sinks.base import SinkError
from services.export.sinks.http import retry_after

__all__ = ["GrpcTransport", "HttpTransport", "Transport", "rejected_count", "shown"]

#: gRPC codes the OTLP specification calls retryable.
RETRYABLE_CODES = frozenset({
    grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED,
    grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DATA_LOSS,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
})
#: HTTP statuses whose batch is refused for what it contains; resending cannot help.
PERMANENT_STATUSES = frozenset({400, 413, 422})

_PATHS = {"logs": "/v1/logs", "metrics": "/v1/metrics"}
#: The collector services' Export methods, called with serialised requests.
_METHODS = {"logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"}
_RESPONSES = {"logs": logs_service_pb2.ExportLogsServiceResponse,
              "metrics": metrics_service_pb2.ExportMetricsServiceResponse}


def shown(url: str) -> str:
    """``url`` without user information, fit for logs and the status list."""
    parts = urlsplit(url)
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def rejected_count(response: Message, signal: str) -> int:
    """Items an OTLP response's partial success says were rejected."""
    if not response.HasField("partial_success"):
        return 0
    partial = response.partial_success
    return (partial.rejected_log_records if signal == "logs" else partial.rejected_data_points)


class Transport:
    """Sends one serialised export request of a signal ("logs" or "metrics")."""

    endpoint: str

    async def send(self, signal: str, request: bytes) -> int:
        """Returns the items the receiver rejected (partial success); raises SinkError."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class GrpcTransport(Transport):
    """The collector's LogsService/MetricsService ``Export`` over one ``grpc.aio`` channel."""

    def __init__(self, url: str, headers: tuple[tuple[str, str], ...], timeout: float):
        parts = urlsplit(url)
        host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
        self.endpoint = shown(f"{parts.scheme}://{parts.netloc}")
        target = f"{host}:{parts.port or (443 if parts.scheme == 'https' else 4317)}"
        self._target, self._secure = target, parts.scheme == "https"
        self._metadata = tuple((k.lower(), v) for k, v in headers)
        self._timeout = timeout
        self._channel: grpc.aio.Channel | None = None
        self._calls: dict[str, grpc.aio.UnaryUnaryMultiCallable] = {}

    def _call(self, signal: str) -> grpc.aio.UnaryUnaryMultiCallable:
        if self._channel is None:
            options = [("grpc.max_send_message_length", 64 * 1024 * 1024),
                       ("grpc.initial_reconnect_backoff_ms", 100),
                       ("grpc.max_reconnect_backoff_ms", 2_000),
                       ("grpc.use_local_subchannel_pool", 1)]
            self._channel = (grpc.aio.secure_channel(self._target, grpc.ssl_channel_credentials(),
                                                     options=options) if self._secure
                             else grpc.aio.insecure_channel(self._target, options=options))
            self._calls = {
                name: self._channel.unary_unary(
                    method, response_deserializer=_RESPONSES[name].FromString)
                for name, method in _METHODS.items()}
        return self._calls[signal]

    async def send(self, signal: str, request: bytes) -> int:
        try:
            response = await self._call(signal)(request, timeout=self._timeout,
                                                metadata=self._metadata)
        except grpc.aio.AioRpcError as exc:
            raise SinkError(f"{exc.code().name}: {exc.details()}",
                            retryable=exc.code() in RETRYABLE_CODES,
                            retry_after=_retry_info(exc)) from None
        return rejected_count(response, signal)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None


def _retry_info(exc: grpc.aio.AioRpcError) -> float | None:
    for key, value in exc.trailing_metadata() or ():
        if key != "grpc-status-details-bin":
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except DecodeError:
            return None
        for detail in status.details:
            info = error_details_pb2.RetryInfo()
            if detail.Unpack(info):
                return info.retry_delay.ToTimedelta().total_seconds()
    return None


class HttpTransport(Transport):
    """``POST`` of protobuf bodies to ``<base>/v1/logs`` and ``/v1/metrics`` (or full URLs)."""

    def __init__(self, urls: dict[str, str], headers: tuple[tuple[str, str], ...],
                 timeout: float, *, compress: bool):
        self.urls = urls
        parts = urlsplit(next(iter(urls.values())))
        self.endpoint = shown(f"{parts.scheme}://{parts.netloc}")
        self._headers = {**dict(headers), "Content-Type": "application/x-protobuf"}
        if compress:
            self._headers["Content-Encoding"] = "gzip"
        self._compress = compress
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_base(cls, base: str, signals: tuple[str, ...], headers, timeout: float, *,
                  compress: bool) -> HttpTransport:
        base = base.rstrip("/")
        return cls({s: base + _PATHS[s] for s in signals}, headers, timeout, compress=compress)

    async def send(self, signal: str, request: bytes) -> int:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        body = gzip.compress(request, compresslevel=5) if self._compress else request
        try:
            async with self._session.post(self.urls[signal], data=body,
                                          headers=self._headers) as reply:
                payload = await reply.read()
                if reply.status >= 300:
                    raise SinkError(f"HTTP {reply.status} from {shown(self.urls[signal])}",
                                    retryable=reply.status not in PERMANENT_STATUSES,
                                    retry_after=retry_after(reply.headers))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise SinkError(f"{shown(self.urls[signal])}: {type(exc).__name__}") from None
        try:
            return rejected_count(_RESPONSES[signal].FromString(payload), signal)
        except DecodeError:
            return 0  # an empty or non-protobuf 2xx body still acknowledges the batch

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
