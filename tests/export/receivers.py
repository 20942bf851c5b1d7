"""OTLP receivers for tests: the real opentelemetry-proto collector services, gRPC and HTTP.

Each decodes what arrives and keeps it; ``down()`` / ``up()`` take the
receiver off its port and bring it back on the same one.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from typing import Any

import grpc
from aiohttp import web
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc

from tests.conftest import free_port

__all__ = ["GrpcReceiver", "HttpReceiver", "Received"]


def _value(any_value) -> Any:
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in any_value.kvlist_value.values}
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    return getattr(any_value, kind)


def _attributes(pairs) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs}


@dataclass
class Received:
    """Everything a receiver decoded, flattened for assertions."""

    #: One dict per log record: resource, severity, body, attributes, time.
    logs: list[dict] = field(default_factory=list)
    #: Every metrics request, as decoded protobuf.
    metric_requests: list = field(default_factory=list)
    #: Request metadata (gRPC) or headers (HTTP), lower-cased, of each request.
    headers: list[dict[str, str]] = field(default_factory=list)
    #: The size of each logs request's protobuf payload (decompressed), in bytes.
    log_payload_bytes: list[int] = field(default_factory=list)

    def add_logs(self, request: logs_service_pb2.ExportLogsServiceRequest) -> None:
        for resource_logs in request.resource_logs:
            resource = _attributes(resource_logs.resource.attributes)
            for scope_logs in resource_logs.scope_logs:
                for record in scope_logs.log_records:
                    self.logs.append({
                        "resource": resource, "scope": scope_logs.scope.name,
                        "time_unix_nano": record.time_unix_nano,
                        "severity_number": record.severity_number,
                        "severity_text": record.severity_text, "body": _value(record.body),
                        "attributes": _attributes(record.attributes)})

    def bodies(self) -> list[str]:
        return [r["body"] for r in self.logs]

    def metrics(self) -> dict[str, dict]:
        """The newest export of each metric, as JSON (``sum``, ``gauge`` or ``histogram``)."""
        out: dict[str, dict] = {}
        for request in self.metric_requests:
            for rm in request.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        out[metric.name] = json_format.MessageToDict(metric)
        return out


class _Logs(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, receiver: GrpcReceiver):
        self.receiver = receiver

    async def Export(self, request, context):
        self.receiver.received.headers.append(dict(context.invocation_metadata()))
        if self.receiver.fail_logs:
            code = self.receiver.fail_logs.pop(0)
            await context.abort(code, "refused by the test")
        self.receiver.received.log_payload_bytes.append(request.ByteSize())
        self.receiver.received.add_logs(request)
        return logs_service_pb2.ExportLogsServiceResponse()


class _Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, receiver: GrpcReceiver):
        self.receiver = receiver

    async def Export(self, request, context):
        self.receiver.received.metric_requests.append(request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


class GrpcReceiver:
    """A grpc.aio server serving the collector's LogsService and MetricsService."""

    def __init__(self):
        self.port = free_port()
        self.received = Received()
        #: Status codes the next log exports are refused with, one per export.
        self.fail_logs: list[grpc.StatusCode] = []
        self._server: grpc.aio.Server | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def up(self) -> None:
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0),
                                          ("grpc.max_receive_message_length", 64 * 2**20)])
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_Logs(self), server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_Metrics(self), server)
        server.add_insecure_port(f"127.0.0.1:{self.port}")
        await server.start()
        self._server = server

    async def down(self) -> None:
        if self._server is not None:
            await self._server.stop(0)
            self._server = None


class HttpReceiver:
    """OTLP/HTTP: ``POST /v1/logs`` and ``/v1/metrics`` with protobuf bodies, gzip or not."""

    def __init__(self, prefix: str = ""):
        self.port = free_port()
        self.prefix = prefix
        self.received = Received()
        #: (status, Retry-After) the next log exports are answered with, one per export.
        self.fail_logs: list[tuple[int, str | None]] = []
        self._runner: web.AppRunner | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    async def _body(self, request: web.Request) -> bytes:
        # aiohttp inflates a gzip Content-Encoding itself; the headers still say it was sent.
        body = await request.read()
        return gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body

    async def _logs(self, request: web.Request) -> web.Response:
        self.received.headers.append({k.lower(): v for k, v in request.headers.items()})
        if request.content_type != "application/x-protobuf":
            return web.Response(status=415)
        if self.fail_logs:
            status, retry_after = self.fail_logs.pop(0)
            return web.Response(status=status,
                                headers={"Retry-After": retry_after} if retry_after else {})
        payload = await self._body(request)
        self.received.log_payload_bytes.append(len(payload))
        self.received.add_logs(logs_service_pb2.ExportLogsServiceRequest.FromString(payload))
        return web.Response(body=logs_service_pb2.ExportLogsServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")

    async def _metrics(self, request: web.Request) -> web.Response:
        self.received.headers.append({k.lower(): v for k, v in request.headers.items()})
        self.received.metric_requests.append(
            metrics_service_pb2.ExportMetricsServiceRequest.FromString(await self._body(request)))
        return web.Response(
            body=metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString(),
            content_type="application/x-protobuf")

    async def up(self) -> None:
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_post(f"{self.prefix}/v1/logs", self._logs)
        app.router.add_post(f"{self.prefix}/v1/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def down(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
