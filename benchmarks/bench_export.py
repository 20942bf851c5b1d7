"""Export speed: throughput to OTLP, lag under steady ingest, and the cost on REST ingest.

Every component runs in its own process (health, metrics, logs, gateway, and
export when measured) on SQLite; the OTLP receiver is a grpc.aio server of the
real collector services in this process, counting records as they arrive.

- ``export_otlp_entries_per_second``: 100 000 stored entries shipped to the
  receiver from the moment it comes up, the export service having started while it
  was down (so start-up is not counted); baseline: the REST ingest rate
  of the same run (``POST /logs``, 500 lines per request, 4 in flight), so a
  ratio of at least 1 means export keeps up with ingest.
- ``export_lag_p99_seconds``: receipt time minus each entry's timestamp (set by
  the client as it posts) under a steady 5 000 entries/s of REST ingest for 20 s;
  baseline: the 2 s target.
- ``export_ingest_with_export_lines_per_second``: the REST ingest rate while two
  destinations (OTLP gRPC and New Relic's OTLP/HTTP to a local receiver) export;
  baseline: the same ingest without export (ratio 0.9 or more: at most a 10 % drop).

``BOTMON_BENCH_EXPORT_LINES`` sets the stored entries (default 100 000).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import grpc
import httpx
from aiohttp import web
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc

from benchmarks.processes import Processes, figure, free_port, wait_http, wait_port

LINES = int(os.environ.get("BOTMON_BENCH_EXPORT_LINES", "100000"))
PER_REQUEST = 500
IN_FLIGHT = 4
STEADY_RATE = 5000
STEADY_SECONDS = 20
TOKEN = "bench-operator-token-0123456789abcdef"


class Receiver(logs_service_pb2_grpc.LogsServiceServicer,
               metrics_service_pb2_grpc.MetricsServiceServicer):
    """Counts log records; records the lag of those stamped after ``lag_from``."""

    def __init__(self):
        self.count = 0
        self.lags: list[float] = []
        self.lag_from: float | None = None

    async def Export(self, request, context):
        if isinstance(request, logs_service_pb2.ExportLogsServiceRequest):
            now = time.time()
            for resource_logs in request.resource_logs:
                for scope_logs in resource_logs.scope_logs:
                    self.count += len(scope_logs.log_records)
                    if self.lag_from is not None:
                        self.lags += [now - r.time_unix_nano / 1e9
                                      for r in scope_logs.log_records
                                      if r.time_unix_nano / 1e9 >= self.lag_from]
            return logs_service_pb2.ExportLogsServiceResponse()
        return metrics_service_pb2.ExportMetricsServiceResponse()


class _Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    async def Export(self, request, context):
        return metrics_service_pb2.ExportMetricsServiceResponse()


async def _receiver(port: int, receiver: Receiver) -> grpc.aio.Server:
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 * 2**20)])
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(receiver, server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_Metrics(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server


async def _http_receiver(port: int) -> web.AppRunner:
    """New Relic's side: accepts OTLP/HTTP protobuf bodies."""
    async def accept(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(content_type="application/x-protobuf")
    app = web.Application(client_max_size=64 * 2**20)
    app.router.add_post("/v1/logs", accept)
    app.router.add_post("/v1/metrics", accept)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def _batch(n: int, tag: str) -> dict:
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"
    return {"logs": [{"timestamp": stamp, "level": ("info", "warn", "error", "debug")[i % 4],
                      "service": f"svc{i % 10}", "message": f"{tag} order {i} processed",
                      "metadata": {"request_id": f"{tag}-{i}", "user_id": f"user_{i % 500}"}}
                     for i in range(n)]}


async def _ingest(base: str, lines: int, tag: str) -> float:
    """REST ingest of ``lines`` as fast as IN_FLIGHT clients go; lines/s."""
    requests = lines // PER_REQUEST
    queue = list(range(requests))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=IN_FLIGHT)) \
            as http:
        async def worker():
            while queue:
                queue.pop()
                r = await http.post(f"{base}/logs", json=_batch(PER_REQUEST, tag),
                                    headers=headers)
                r.raise_for_status()
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
        return requests * PER_REQUEST / (time.perf_counter() - started)


async def _steady(base: str, rate: int, seconds: int) -> int:
    """POST ``rate`` lines a second for ``seconds``, in ten paced requests a second."""
    per_tick = rate // 10
    headers = {"Authorization": f"Bearer {TOKEN}"}
    sent = 0
    async with httpx.AsyncClient(timeout=60) as http:
        started = time.monotonic()
        pending: set[asyncio.Task] = set()
        for tick in range(seconds * 10):
            delay = started + tick / 10 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.add(asyncio.ensure_future(
                http.post(f"{base}/logs", json=_batch(per_tick, f"steady{tick}"),
                          headers=headers)))
            sent += per_tick
            done = {t for t in pending if t.done()}
            for task in done:
                task.result().raise_for_status()
            pending -= done
        for reply in await asyncio.gather(*pending):
            reply.raise_for_status()
    return sent


async def _wait_count(receiver: Receiver, count: int, within: float) -> None:
    deadline = time.monotonic() + within
    while receiver.count < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the receiver has {receiver.count} of {count} entries")
        await asyncio.sleep(0.02)


async def _run(tmp: Path) -> None:
    env = {**os.environ, "BOTMON_DATA_DIR": str(tmp), "BOTMON_API_TOKENS": f"{TOKEN}:operator",
           "BOTMON_HTTP_ADDR": f"127.0.0.1:{free_port()}", "BOTMON_LOG_LEVEL": "warning",
           "BOTMON_RATE_LIMITS": "ingest=unlimited,logs=unlimited,default=unlimited"}
    for name in ("health", "metrics", "alerts", "logs", "export"):
        env[f"BOTMON_{name.upper()}_ADDR"] = f"127.0.0.1:{free_port()}"
    grpc_port, http_port = free_port(), free_port()
    receiver = Receiver()
    server = await _receiver(grpc_port, receiver)
    http_runner = await _http_receiver(http_port)
    base = f"http://{env['BOTMON_HTTP_ADDR']}/api/v1/monitoring"
    with Processes(tmp) as procs:
        for name in ("health", "metrics", "logs"):
            procs.start(name, [sys.executable, "-m", f"services.{name}"], env)
            wait_port(int(env[f"BOTMON_{name.upper()}_ADDR"].rsplit(":", 1)[1]))
        gateway = procs.start("gateway", [sys.executable, "-m", "gateway"], env)
        await asyncio.to_thread(wait_http, f"{base}/health/live", procs, "gateway", gateway,
                                TOKEN)
        # Warm up, then the ingest baseline without export; it also stores the backlog.
        await _ingest(base, 5000, "warm")
        alone = await _ingest(base, LINES, "alone")
        stored = LINES + 5000

        export_env = {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{grpc_port}",
                      "BOTMON_NEWRELIC_LICENSE_KEY": "bench-licence-key",
                      "BOTMON_NEWRELIC_ENDPOINT": f"http://127.0.0.1:{http_port}",
                      "BOTMON_EXPORT_RETRY_INITIAL": "0.05", "BOTMON_EXPORT_RETRY_MAX": "0.1"}
        # The OTLP receiver is down while the export service starts, so the figure is the
        # catching up of a destination that comes back, not the process's start-up.
        await server.stop(0)
        procs.start("export", [sys.executable, "-m", "services.export"], export_env)
        await asyncio.to_thread(wait_port, int(env["BOTMON_EXPORT_ADDR"].rsplit(":", 1)[1]))
        await asyncio.sleep(2.0)
        server = await _receiver(grpc_port, receiver)
        started = time.perf_counter()
        await _wait_count(receiver, stored, within=600)
        throughput = stored / (time.perf_counter() - started)
        figure("export_otlp_entries_per_second", throughput, "entries/s", alone)
        print(f"export_otlp_entries_per_second_vs_target: {throughput / 50000:.2f} "
              "(target 50 000 entries/s)", flush=True)

        receiver.lag_from = time.time()
        sent = await _steady(base, STEADY_RATE, STEADY_SECONDS)
        await _wait_count(receiver, stored + sent, within=120)
        lags = sorted(receiver.lags)
        p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
        figure("export_lag_p99_seconds", p99, "s", 2.0)
        print(f"export_lag_p50_seconds: {lags[len(lags) // 2]:.3f} s", flush=True)
        receiver.lag_from = None

        with_export = await _ingest(base, LINES, "with")
        figure("export_ingest_with_export_lines_per_second", with_export, "lines/s", alone)
    await server.stop(0)
    await http_runner.cleanup()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="botmon-bench-export-") as tmp:
        asyncio.run(_run(Path(tmp)))


if __name__ == "__main__":
    main()
