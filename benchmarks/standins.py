"""The vendors' intake APIs for ``bench_export``, in a process of their own.

    python -m benchmarks.standins ADDRESS_FILE

serves, on one port, New Relic's OTLP/HTTP (``/v1/logs``, ``/v1/metrics``) and
Datadog's v2 intake (``/api/v2/logs``, ``/api/v2/series``), each accepting what it
is sent; on another the Elasticsearch stand-in of the tests
(``tests/export/elasticsearch_double.py``: bulk API, data streams, templates),
as no Elasticsearch installs on this machine; and on a third the OTLP collector's
gRPC services (``opentelemetry-proto``), decoding and accepting what they are sent.
``ADDRESS_FILE`` receives ``{"http": base URL, "elasticsearch": base URL, "otlp":
endpoint}`` once all listen; SIGTERM stops it.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import grpc
from aiohttp import web
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc

from tests.export.elasticsearch_double import ElasticsearchDouble

__all__ = ["AcceptLogs", "AcceptMetrics", "main", "otlp_server"]


async def _accept(request: web.Request) -> web.Response:
    await request.read()
    if request.path.startswith("/v1/"):
        return web.Response(content_type="application/x-protobuf")
    return web.json_response({}, status=202)


class AcceptLogs(logs_service_pb2_grpc.LogsServiceServicer):
    async def Export(self, request, context):
        return logs_service_pb2.ExportLogsServiceResponse()


class AcceptMetrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    async def Export(self, request, context):
        return metrics_service_pb2.ExportMetricsServiceResponse()


def otlp_server(logs: logs_service_pb2_grpc.LogsServiceServicer,
                address: str) -> tuple[grpc.aio.Server, int]:
    """The OTLP collector's gRPC services on ``address`` (not started): logs answered by
    ``logs``, metrics accepted; the server and its port."""
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 * 2**20)])
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(logs, server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(AcceptMetrics(), server)
    return server, server.add_insecure_port(address)


async def _serve(address_file: Path) -> None:
    otlp, otlp_port = otlp_server(AcceptLogs(), "127.0.0.1:0")
    await otlp.start()
    app = web.Application(client_max_size=64 * 2**20)
    for path in ("/v1/logs", "/v1/metrics", "/api/v2/logs", "/api/v2/series"):
        app.router.add_post(path, _accept)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    http_port = site._server.sockets[0].getsockname()[1]
    elasticsearch = ElasticsearchDouble()
    await elasticsearch.start()
    written = address_file.with_suffix(".tmp")
    await asyncio.to_thread(written.write_text, json.dumps(
        {"http": f"http://127.0.0.1:{http_port}", "elasticsearch": elasticsearch.url,
         "otlp": f"http://127.0.0.1:{otlp_port}"}))
    written.rename(address_file)  # whole, or not there yet
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await elasticsearch.stop()
    await runner.cleanup()
    await otlp.stop(0)


def main() -> None:
    asyncio.run(_serve(Path(sys.argv[1])))


if __name__ == "__main__":
    main()
