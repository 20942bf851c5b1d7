"""OTLP: any OpenTelemetry backend, over gRPC or HTTP/protobuf, configured the standard way.

The variables are those of the OpenTelemetry exporter specification:
``OTEL_EXPORTER_OTLP_ENDPOINT`` (a base URL: HTTP appends ``/v1/logs`` and
``/v1/metrics``) or the per-signal ``OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`` /
``_METRICS_ENDPOINT`` (used as they are), ``…_PROTOCOL``, ``…_HEADERS``
(``key=value`` pairs, URL-encoded values), ``OTEL_EXPORTER_OTLP_COMPRESSION``,
``OTEL_EXPORTER_OTLP_TIMEOUT`` (milliseconds), ``OTEL_SERVICE_NAME`` and
``OTEL_RESOURCE_ATTRIBUTES``. A signal is sent when it has an endpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import unquote

from botmon.runtime.config import EnvSettings, one_of, positive_int, setting, url
from services.export.sinks.base import LogRecord, MetricFamily, SendResult
from services.export.sinks.otlp_encoder import Encoder
from services.export.sinks.otlp_transport import GrpcTransport, HttpTransport, Transport

__all__ = ["OtlpSink", "Settings", "create", "parse_pairs"]

PROTOCOLS = ("grpc", "http/protobuf")


def parse_pairs(raw: str) -> tuple[tuple[str, str], ...]:
    """``k1=v1,k2=v2`` with URL-encoded values (W3C Baggage without properties).

    Errors never repeat the text: headers carry API keys.
    """
    pairs = []
    for number, item in enumerate(raw.split(","), 1):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected key=value pairs separated by commas; item {number} "
                             "has no key=")
        pairs.append((unquote(key.strip()), unquote(value.strip())))
    return tuple(pairs)


_endpoint = url("http", "https")
_protocol = one_of(*PROTOCOLS)


@dataclass(frozen=True)
class Settings(EnvSettings):
    """The OpenTelemetry exporter variables botmon honours."""

    endpoint: str | None = setting(
        "OTEL_EXPORTER_OTLP_ENDPOINT", None, _endpoint,
        doc="OTLP destination base URL (http:// or https://); turns OTLP export on")
    logs_endpoint: str | None = setting(
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", None, _endpoint,
        doc="URL for logs only, used as it is (HTTP: the full path)")
    metrics_endpoint: str | None = setting(
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", None, _endpoint,
        doc="URL for metrics only, used as it is (HTTP: the full path)")
    protocol: str = setting("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", _protocol,
                            doc="grpc or http/protobuf")
    logs_protocol: str | None = setting("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", None, _protocol,
                                        doc="protocol for logs (default: the general one)")
    metrics_protocol: str | None = setting("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", None, _protocol,
                                           doc="protocol for metrics (default: the general one)")
    headers: tuple[tuple[str, str], ...] = setting(
        "OTEL_EXPORTER_OTLP_HEADERS", (), parse_pairs, secret=True,
        doc="key=value,… sent with every export (e.g. an API key header)")
    logs_headers: tuple[tuple[str, str], ...] | None = setting(
        "OTEL_EXPORTER_OTLP_LOGS_HEADERS", None, parse_pairs, secret=True,
        doc="headers for logs (default: the general ones)")
    metrics_headers: tuple[tuple[str, str], ...] | None = setting(
        "OTEL_EXPORTER_OTLP_METRICS_HEADERS", None, parse_pairs, secret=True,
        doc="headers for metrics (default: the general ones)")
    compression: str = setting("OTEL_EXPORTER_OTLP_COMPRESSION", "none", one_of("none", "gzip"),
                               doc="gzip compresses HTTP bodies")
    timeout_ms: int = setting("OTEL_EXPORTER_OTLP_TIMEOUT", 10_000, positive_int,
                              doc="milliseconds one export may take")
    service_name: str | None = setting(
        "OTEL_SERVICE_NAME", None,
        doc="service.name of the metrics resource (logs carry each entry's service); "
            "default botmon")
    resource_attributes: tuple[tuple[str, str], ...] = setting(
        "OTEL_RESOURCE_ATTRIBUTES", (), parse_pairs,
        doc="key=value,… added to the resource of everything sent")

    @property
    def enabled(self) -> bool:
        return bool(self.endpoint or self.logs_endpoint or self.metrics_endpoint)

    def signal(self, name: str) -> tuple[str, str, tuple[tuple[str, str], ...], bool] | None:
        """(url, protocol, headers, url is the signal's own) of ``name``, or None when unset."""
        own = getattr(self, f"{name}_endpoint")
        endpoint = own or self.endpoint
        if endpoint is None:
            return None
        headers = getattr(self, f"{name}_headers")
        return (endpoint, getattr(self, f"{name}_protocol") or self.protocol,
                self.headers if headers is None else headers, own is not None)

    def encoder(self) -> Encoder:
        resource = dict(self.resource_attributes)
        name = self.service_name or resource.pop("service.name", None) or "botmon"
        resource.pop("service.name", None)
        return Encoder(name, resource)


class OtlpSink:
    """Logs and metrics to the transport of each signal."""

    name: ClassVar[str] = "otlp"
    max_records: ClassVar[int] = 5000
    #: Under the 4 MiB a collector accepts per gRPC message by default.
    max_bytes: ClassVar[int] = 3 * 1024 * 1024

    def __init__(self, encoder: Encoder, transports: dict[str, Transport]):
        self.encoder = encoder
        self.transports = transports
        self.endpoint = ", ".join(sorted({t.endpoint for t in transports.values()}))

    async def send_logs(self, records: Sequence[LogRecord]) -> SendResult:
        transport = self.transports.get("logs")
        if transport is None:
            return SendResult()
        rejected = await transport.send("logs", self.encoder.logs(records))
        return SendResult(rejected=_last(len(records), rejected))

    async def send_metrics(self, families: Sequence[MetricFamily]) -> SendResult:
        transport = self.transports.get("metrics")
        if transport is None:
            return SendResult()
        await transport.send("metrics", self.encoder.metrics(families))
        return SendResult()

    async def close(self) -> None:
        for transport in {id(t): t for t in self.transports.values()}.values():
            await transport.close()


def _last(total: int, count: int) -> tuple[int, ...]:
    # OTLP's partial success says how many items were rejected, not which: count them.
    return tuple(range(total - min(count, total), total))


def create(settings: Settings) -> OtlpSink:
    transports: dict[str, Transport] = {}
    timeout = settings.timeout_ms / 1000
    for signal in ("logs", "metrics"):
        resolved = settings.signal(signal)
        if resolved is None:
            continue
        endpoint, protocol, headers, own = resolved
        if protocol == "grpc":
            transports[signal] = GrpcTransport(endpoint, headers, timeout)
        elif own:
            transports[signal] = HttpTransport({signal: endpoint}, headers, timeout,
                                               compress=settings.compression == "gzip")
        else:
            transports[signal] = HttpTransport.from_base(endpoint, (signal,), headers, timeout,
                                                         compress=settings.compression == "gzip")
    return OtlpSink(settings.encoder(), transports)
