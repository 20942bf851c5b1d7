"""Export speed: throughput to OTLP, lag under steady ingest, and the cost on REST ingest.

Every component runs in its own process (health, metrics, logs, gateway, and
export when measured, in the idle scheduling class as ``botmon up`` runs it) on
SQLite; for the throughput and lag figures the OTLP receiver is a grpc.aio server of
the real collector services in this process, counting records as they arrive. The
destinations' stand-ins of the ingest-cost figure run in processes of their own in the
idle class (``chrt --idle``), below everything measured, because the real ones run on
other machines: moto's server for CloudWatch (``moto[server]``), and
``benchmarks/standins.py`` for OTLP (the collector services again, as this process is
the ingest client measured there), New Relic and Datadog (local HTTP receivers that
accept what they are sent) and Elasticsearch (the tests' bulk-API stand-in; no
Elasticsearch installs here).

- ``export_otlp_entries_per_second``: 505 000 stored entries (``BOTMON_BENCH_EXPORT_LINES``
  and 5 000 of warm-up) shipped to the receiver, OTLP the only destination, from the
  moment it comes up, the export service having started while it was down (so start-up
  is not counted): about 10 s at the 50 000/s target, long enough for the figure not to
  move with a second of noise; baseline: the REST ingest rate of the same run (``POST
  /logs``, 500 lines per request, 4 in flight) while those entries are stored, so a
  ratio of at least 1 means export keeps up with ingest. Beside it, the entries shipped
  per CPU second of the export process, which the machine's load does not lower.
- ``export_lag_p99_seconds``: receipt time minus each entry's timestamp (set by
  the client as it posts) under a steady 5 000 entries/s of REST ingest for 20 s,
  OTLP the only destination; baseline: the 2 s target.
- ``export_ingest_with_export_lines_per_second``: the REST ingest rate while all five
  destinations export (OTLP over gRPC, New Relic, Datadog, CloudWatch, Elasticsearch),
  caught up when the round starts; baseline: the same ingest with the export process
  paused (SIGSTOP: no CPU, no reads). Five rounds of 200 000 lines each way (about 2 s
  here), side by side, so that a pair sees the same load from elsewhere on the machine;
  the median of
  the rates and of the pairs' ratios (0.9 or more: at most a 10 % drop). Beside it, the
  CPU per ingested line of each process, and of the ingest path (client, gateway, logs
  service) with the export running against paused: what serving the export's reads
  costs the logs service shows there (its process runs at normal priority; on SQLite
  the reads themselves run on a reader thread in the idle class).

``BOTMON_BENCH_EXPORT_LINES`` sets the entries stored for the throughput figure (default
500 000); the rounds are 200 000 lines whatever it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import grpc
import httpx
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc

from benchmarks.cpu import read_cpu
from benchmarks.processes import (
    INTERNAL_TOKEN,
    Processes,
    figure,
    free_port,
    internal_channel,
    wait_http,
    wait_port,
)
from benchmarks.standins import otlp_server
from botmon.export.v1 import export_service_pb2, export_service_pb2_grpc

LINES = int(os.environ.get("BOTMON_BENCH_EXPORT_LINES", "500000"))
PER_REQUEST = 500
IN_FLIGHT = 4
ROUNDS = 5
ROUND_LINES = 200_000
STEADY_RATE = 5000
STEADY_SECONDS = 20
TOKEN = "bench-operator-token-0123456789abcdef"
DESTINATIONS = ("otlp", "newrelic", "datadog", "cloudwatch", "elasticsearch")


class Receiver(logs_service_pb2_grpc.LogsServiceServicer):
    """Counts log records; records the lag of those stamped after ``lag_from``."""

    def __init__(self):
        self.count = 0
        self.lags: list[float] = []
        self.lag_from: float | None = None

    async def Export(self, request, context):
        now = time.time()
        for resource_logs in request.resource_logs:
            for scope_logs in resource_logs.scope_logs:
                self.count += len(scope_logs.log_records)
                if self.lag_from is not None:
                    self.lags += [now - r.time_unix_nano / 1e9
                                  for r in scope_logs.log_records
                                  if r.time_unix_nano / 1e9 >= self.lag_from]
        return logs_service_pb2.ExportLogsServiceResponse()


async def _receiver(port: int, receiver: Receiver) -> grpc.aio.Server:
    server, _ = otlp_server(receiver, f"127.0.0.1:{port}")
    await server.start()
    return server


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


async def _caught_up(port: int, names: tuple[str, ...], count: int, within: float) -> float:
    """Wait until each destination named has dealt with ``count`` entries; the seconds it took."""
    started = time.monotonic()
    async with internal_channel(f"127.0.0.1:{port}") as channel:
        stub = export_service_pb2_grpc.ExportServiceStub(channel)
        done: dict[str, int] = {}
        while True:
            with contextlib.suppress(grpc.aio.AioRpcError):
                reply = await stub.ListDestinations(
                    export_service_pb2.ListDestinationsRequest(), timeout=5)
                done = {d.name: d.sent + d.failed + d.skipped for d in reply.destinations}
                if all(done.get(name, 0) >= count for name in names):
                    return time.monotonic() - started
            if time.monotonic() - started > within:
                raise RuntimeError(f"the destinations have {done} of {count} entries")
            await asyncio.sleep(0.2)


async def _measured_ingest(base: str, tag: str, pids: dict[str, int]
                           ) -> tuple[float, dict[str, float]]:
    """REST ingest of ROUND_LINES: (lines/s, CPU µs per line of each process named)."""
    before = read_cpu(pids.values())
    rate = await _ingest(base, ROUND_LINES, tag)
    after = read_cpu(pids.values())
    return rate, {name: (after.seconds.get(pid, 0.0) - before.seconds.get(pid, 0.0))
                  / ROUND_LINES * 1e6 for name, pid in pids.items()}


def _add(total: dict[str, float], used: dict[str, float]) -> None:
    for name, value in used.items():
        total[name] = total.get(name, 0.0) + value


def _start_standins(procs: Processes, tmp: Path, env: dict[str, str]) -> dict:
    """Start moto and the other stand-ins in the idle class: their addresses, and their pids."""
    moto_port = free_port()
    moto = procs.start("moto", ["chrt", "--idle", "0", sys.executable, "-m", "moto.server",
                         "-H", "127.0.0.1", "-p", str(moto_port)], env)
    addresses = tmp / "standins.json"
    standins = procs.start("standins", ["chrt", "--idle", "0", sys.executable, "-m",
                                        "benchmarks.standins", str(addresses)], env)
    wait_port(moto_port)
    deadline = time.monotonic() + 30
    while not addresses.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the stand-ins did not start:\n{procs.tail('standins')}")
        time.sleep(0.1)
    urls = json.loads(addresses.read_text())
    return {"cloudwatch": f"http://127.0.0.1:{moto_port}", **urls,
            "pids": {"moto": moto.pid, "standins": standins.pid}}


async def _run(tmp: Path) -> None:
    # Logging at make run's level (info), like every figure; the rate limits lifted.
    env = {**os.environ, "BOTMON_DATA_DIR": str(tmp), "BOTMON_API_TOKENS": f"{TOKEN}:operator",
           "BOTMON_HTTP_ADDR": f"127.0.0.1:{free_port()}", "BOTMON_LOG_LEVEL": "info",
           "BOTMON_INTERNAL_TOKEN": INTERNAL_TOKEN,
           "BOTMON_RATE_LIMITS": "ingest=unlimited,logs=unlimited,default=unlimited"}
    for name in ("health", "metrics", "alerts", "logs", "export"):
        env[f"BOTMON_{name.upper()}_ADDR"] = f"127.0.0.1:{free_port()}"
    export_port = int(env["BOTMON_EXPORT_ADDR"].rsplit(":", 1)[1])
    grpc_port = free_port()
    receiver = Receiver()
    base = f"http://{env['BOTMON_HTTP_ADDR']}/api/v1/monitoring"
    otlp_env = {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{grpc_port}",
                "BOTMON_EXPORT_RETRY_INITIAL": "0.05", "BOTMON_EXPORT_RETRY_MAX": "0.1"}
    with Processes(tmp) as procs:
        urls = _start_standins(procs, tmp, env)
        services = {name: procs.start(name, [sys.executable, "-m", f"services.{name}"], env)
                   for name in ("health", "metrics", "logs")}
        for name in services:
            wait_port(int(env[f"BOTMON_{name.upper()}_ADDR"].rsplit(":", 1)[1]))
        gateway = procs.start("gateway", [sys.executable, "-m", "gateway"], env)
        pids = {"bench": os.getpid(), "gateway": gateway.pid, "logs": services["logs"].pid,
                **urls["pids"]}
        await asyncio.to_thread(wait_http, f"{base}/health/live", procs, "gateway", gateway,
                                TOKEN)
        # Warm up, then the ingest rate without export; it also stores the backlog.
        await _ingest(base, 5000, "warm")
        first = await _ingest(base, LINES, "first")
        stored = LINES + 5000

        # The OTLP receiver is down while the export service starts, so the figure is the
        # catching up of a destination that comes back, not the process's start-up.
        export = procs.start("export", [sys.executable, "-m", "services.export"], otlp_env)
        await asyncio.to_thread(wait_port, export_port)
        await asyncio.sleep(2.0)
        server = await _receiver(grpc_port, receiver)
        cpu_before = read_cpu([export.pid])
        started = time.perf_counter()
        await _wait_count(receiver, stored, within=600)
        elapsed = time.perf_counter() - started
        export_cpu = read_cpu([export.pid]).seconds[export.pid] - cpu_before.seconds[export.pid]
        throughput = stored / elapsed
        figure("export_otlp_entries_per_second", throughput, "entries/s", first)
        print(f"export_otlp_entries_per_second_vs_target: {throughput / 50000:.2f} "
              "(target 50 000 entries/s)", flush=True)
        print(f"export_otlp_entries_per_export_cpu_second: {stored / export_cpu:.0f} "
              f"({export_cpu / stored * 1e6:.1f} µs of the export's CPU per entry)", flush=True)

        receiver.lag_from = time.time()
        sent = await _steady(base, STEADY_RATE, STEADY_SECONDS)
        await _wait_count(receiver, stored + sent, within=120)
        lags = sorted(receiver.lags)
        p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
        figure("export_lag_p99_seconds", p99, "s", 2.0)
        print(f"export_lag_p50_seconds: {lags[len(lags) // 2]:.3f} s", flush=True)
        receiver.lag_from = None
        procs.stop_child(export)

        # OTLP too is received in the stand-ins' process from here on: this process is
        # the ingest client measured, and a real collector runs on another machine.
        five_env = {**otlp_env, "OTEL_EXPORTER_OTLP_ENDPOINT": urls["otlp"],
                    "BOTMON_NEWRELIC_LICENSE_KEY": "bench-licence-key",
                    "BOTMON_NEWRELIC_ENDPOINT": urls["http"],
                    "BOTMON_DATADOG_API_KEY": "bench-datadog-key", "BOTMON_DATADOG_URL": urls["http"],
                    "BOTMON_CLOUDWATCH_REGION": "us-east-1",
                    "BOTMON_CLOUDWATCH_ENDPOINT_URL": urls["cloudwatch"],
                    "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret",
                    "AWS_EC2_METADATA_DISABLED": "true",
                    "BOTMON_ELASTICSEARCH_URL": urls["elasticsearch"]}
        export = procs.start("export-five", [sys.executable, "-m", "services.export"],
                             five_env)
        await asyncio.to_thread(wait_port, export_port)
        stored += sent
        catch_up = await _caught_up(export_port, DESTINATIONS, stored, within=600)
        print(f"export_five_caught_up_seconds: {catch_up:.1f} s (four destinations from the "
              f"first of {stored} stored entries)", flush=True)
        # Rounds of ingest with the export paused (SIGSTOP: no CPU, no reads), then with it
        # running, caught up first; pairs side by side see the same load from elsewhere.
        ratios, alone_rates, with_rates = [], [], []
        cpu: dict[str, dict[str, float]] = {"alone": {}, "with": {}}
        for number in range(ROUNDS):
            export.send_signal(signal.SIGSTOP)
            alone, used = await _measured_ingest(base, f"alone{number}", pids)
            _add(cpu["alone"], used)
            export.send_signal(signal.SIGCONT)
            stored += ROUND_LINES
            await _caught_up(export_port, DESTINATIONS, stored, within=600)
            with_export, used = await _measured_ingest(base, f"with{number}",
                                                       {**pids, "export": export.pid})
            _add(cpu["with"], used)
            stored += ROUND_LINES
            await _caught_up(export_port, DESTINATIONS, stored, within=600)
            alone_rates.append(alone)
            with_rates.append(with_export)
            ratios.append(with_export / alone)
        figure("export_ingest_with_export_lines_per_second", statistics.median(with_rates),
               "lines/s", statistics.median(alone_rates))
        print(f"export_ingest_with_export_ratio_median: {statistics.median(ratios):.2f} "
              f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})", flush=True)
        ingest_path = ("bench", "gateway", "logs")
        print("export_ingest_path_cpu_per_line_ratio: "
              f"{sum(cpu['with'][n] for n in ingest_path) / sum(cpu['alone'][n] for n in ingest_path):.2f}"
              " (client, gateway and logs service, with the export running / paused)", flush=True)
        print("export_ingest_cpu_per_line: " + ", ".join(
            f"{name} {used / ROUNDS:.1f} µs"
            + (f" ({cpu['alone'][name] / ROUNDS:.1f} without)" if name in cpu["alone"] else "")
            for name, used in cpu["with"].items()), flush=True)
    await server.stop(0)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="botmon-bench-export-") as tmp:
        asyncio.run(_run(Path(tmp)))


if __name__ == "__main__":
    main()
