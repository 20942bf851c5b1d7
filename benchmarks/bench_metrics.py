"""Metrics ingest and query speed.

- events/s over StreamEvents (batches of 5 000 events per message) into SQLite and
  PostgreSQL, the service in its own process; baseline: a bare ``executemany`` of
  the same events as one row each, in one transaction, on the same database.
- GetPerformanceMetrics(30d, day) latency with 30 days of minute data in the store;
  baseline: GetSystemMetrics (an RPC that reads nothing) on the same server.
- GetApplicationMetrics latency while RecordEvents commits continuously (SQLite, the
  service in its own process, the logs service down); baseline: the same calls on the
  same server without ingest. The figures are refreshed at most once per
  BOTMON_METRICS_MIN_REFRESH and served meanwhile, so a call never waits behind the
  ingest transactions.

PostgreSQL: ``BOTMON_BENCH_DATABASE_URL`` (else ``BOTMON_TEST_DATABASE_URL``, else
postgresql://postgres@127.0.0.1:5432/postgres); a scratch database is created and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

from benchmarks.processes import INTERNAL_TOKEN, figure, free_port, internal_channel
from benchmarks.stores import scratch_database
from botmon.metrics.v1 import metrics_pb2, metrics_service_pb2, metrics_service_pb2_grpc
from botmon.runtime.config import Settings
from services.metrics.buckets import Batch
from services.metrics.config import MetricsSettings

EVENTS = int(os.environ.get("BOTMON_BENCH_EVENTS", "300000"))
PER_MESSAGE = 5000
QUERIES = 200
APP_BATCH = 1000
APP_SECONDS = 2.5
ROOT = Path(__file__).resolve().parents[1]



def _events(n: int) -> list[metrics_pb2.Event]:
    rng = random.Random(7)
    now = time.time()
    out = []
    for i in range(n):
        event = metrics_pb2.Event(type="request", method=("GET", "POST")[i % 2], route="/chat",
                                  status=(200, 200, 200, 404, 500)[i % 5],
                                  duration_ms=rng.lognormvariate(4, 1), bytes=512)
        event.timestamp.FromNanoseconds(int((now - rng.random() * 60) * 1e9))
        out.append(event)
    return out


def _rows(events: list[metrics_pb2.Event]) -> list[tuple]:
    return [(e.timestamp.seconds, e.method, e.route, e.status, e.duration_ms, e.bytes)
            for e in events]


def _nearest(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]



async def _stream(port: int, messages: list[metrics_service_pb2.StreamEventsRequest]) -> float:
    async with internal_channel(f"127.0.0.1:{port}") as channel:
        await asyncio.wait_for(channel.channel_ready(), 30)
        stub = metrics_service_pb2_grpc.MetricsServiceStub(channel)
        started = time.perf_counter()
        reply = await stub.StreamEvents(iter(messages), timeout=120)
        elapsed = time.perf_counter() - started
    assert reply.accepted == EVENTS, reply
    return EVENTS / elapsed


@contextlib.contextmanager
def _service(store_url: str, data_dir: str):
    """A metrics service process on a free port (the other services unreachable)."""
    port = free_port()
    closed = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "BOTMON_METRICS_ADDR": f"127.0.0.1:{port}", "BOTMON_DATA_DIR": data_dir,
           "BOTMON_STORE_URL": store_url, "BOTMON_HEALTH_ADDR": closed,
           "BOTMON_LOGS_ADDR": closed, "BOTMON_ALERTS_ADDR": closed, "BOTMON_LOG_LEVEL": "error",
           "BOTMON_INTERNAL_TOKEN": INTERNAL_TOKEN}
    env.pop("BOTMON_REDIS_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "services.metrics"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(15)


def _ingest_rate(store_url: str, data_dir: str, messages) -> float:
    with _service(store_url, data_dir) as port:
        return asyncio.run(_stream(port, messages))


async def _application_calls(stub, seconds: float) -> list[float]:
    """Sequential GetApplicationMetrics for ``seconds``; latencies in ms, ascending."""
    out = []
    request = metrics_service_pb2.GetApplicationMetricsRequest()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        started = time.perf_counter()
        await stub.GetApplicationMetrics(request, timeout=10)
        out.append((time.perf_counter() - started) * 1000)
    return sorted(out)


async def _application_latency(port: int) -> tuple[list[float], list[float], float]:
    """Latencies idle and under continuous ingest, and the events/s ingested meanwhile."""
    batch = metrics_service_pb2.RecordEventsRequest(events=[
        metrics_pb2.Event(type="request", method="GET", route="/chat", status=200,
                          duration_ms=float(i % 200), bytes=512) for i in range(APP_BATCH)])
    async with internal_channel(f"127.0.0.1:{port}") as channel:
        await asyncio.wait_for(channel.channel_ready(), 30)
        stub = metrics_service_pb2_grpc.MetricsServiceStub(channel)
        idle = await _application_calls(stub, APP_SECONDS)
        stop, sent = asyncio.Event(), [0]

        async def ingest() -> None:
            while not stop.is_set():
                await stub.RecordEvents(batch, timeout=30)
                sent[0] += APP_BATCH

        writers = [asyncio.create_task(ingest()) for _ in range(2)]
        await asyncio.sleep(0.5)
        counted, started = sent[0], time.perf_counter()
        busy = await _application_calls(stub, APP_SECONDS)
        rate = (sent[0] - counted) / (time.perf_counter() - started)
        stop.set()
        await asyncio.gather(*writers)
    return idle, busy, rate


def _sqlite_baseline(path: Path, rows: list[tuple]) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE raw (ts INTEGER, method TEXT, route TEXT, status INTEGER, "
                 "duration_ms REAL, bytes INTEGER)")
    started = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO raw VALUES (?, ?, ?, ?, ?, ?)", rows)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return len(rows) / elapsed


async def _postgres_baseline(url: str, rows: list[tuple]) -> float:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute("CREATE TABLE raw (ts BIGINT, method TEXT, route TEXT, status INT, "
                           "duration_ms DOUBLE PRECISION, bytes BIGINT)")
        started = time.perf_counter()
        async with conn.transaction():
            await conn.executemany("INSERT INTO raw VALUES ($1, $2, $3, $4, $5, $6)", rows)
        return len(rows) / (time.perf_counter() - started)
    finally:
        await conn.close()




async def _fill_thirty_days(store) -> None:
    """30 days of minute buckets (20 requests a minute), written a day per transaction."""
    rng = random.Random(11)
    now = int(time.time())
    first = (now - 30 * 86400) // 60 * 60
    for day in range(30):
        batch = Batch()
        for minute in range(1440):
            start = first + (day * 1440 + minute) * 60
            if start > now:
                break
            bucket = batch.bucket(start)
            for _ in range(20):
                bucket.add_request(200 if rng.random() > 0.01 else 500,
                                   rng.lognormvariate(4, 1), 512)
        batch.events = 1
        await store.write(batch)


async def _query_latency(data_dir: str) -> tuple[float, float, float, float]:
    from services.metrics.__main__ import create_server

    settings = Settings.from_env({}, data_dir=Path(data_dir),
                                 health_addr=f"127.0.0.1:{free_port()}", logs_addr="127.0.0.1:1",
                                 alerts_addr="127.0.0.1:1", internal_token=INTERNAL_TOKEN)
    # Keep every minute row: the benchmark's premise is 30 days of minute data present.
    ms = MetricsSettings.from_env({}, minute_retention_days=31, compaction_interval=3600)
    server = await create_server(settings, address="127.0.0.1:0", metrics_settings=ms)
    metrics = server.bindings[0].servicer.metrics
    async with server:
        await _fill_thirty_days(metrics.store)
        await metrics.compact()
        async with internal_channel(f"127.0.0.1:{server.port}") as channel:
            stub = metrics_service_pb2_grpc.MetricsServiceStub(channel)
            request = metrics_service_pb2.GetPerformanceMetricsRequest(period="30d",
                                                                       resolution="day")
            reply = await stub.GetPerformanceMetrics(request, timeout=10)
            assert reply.performance.throughput.total_requests > 800_000, reply.performance

            async def timed(call, req) -> list[float]:
                out = []
                for _ in range(QUERIES):
                    started = time.perf_counter()
                    await call(req, timeout=10)
                    out.append((time.perf_counter() - started) * 1000)
                return sorted(out)

            perf = await timed(stub.GetPerformanceMetrics, request)
            base = await timed(stub.GetSystemMetrics,
                               metrics_service_pb2.GetSystemMetricsRequest())
    p99 = int(QUERIES * 0.99) - 1
    return perf[QUERIES // 2], perf[p99], base[QUERIES // 2], base[p99]


def main() -> None:
    events = _events(EVENTS)
    messages = [metrics_service_pb2.StreamEventsRequest(events=events[i:i + PER_MESSAGE])
                for i in range(0, EVENTS, PER_MESSAGE)]
    rows = _rows(events)
    with tempfile.TemporaryDirectory(prefix="botmon-bench-metrics-") as tmp:
        db = Path(tmp) / "botmon.db"
        rate = _ingest_rate(f"sqlite:///{db}", tmp, messages)
        figure("metrics_ingest_sqlite_events_per_second", rate, "events/s",
              _sqlite_baseline(Path(tmp) / "baseline.db", rows))
        with contextlib.ExitStack() as scratch:
            try:
                url = scratch.enter_context(scratch_database())
            except (OSError, asyncpg.PostgresError) as exc:
                print(f"metrics_ingest_postgres_events_per_second: skipped ({exc})", flush=True)
            else:
                rate = _ingest_rate(url, tmp, messages)
                figure("metrics_ingest_postgres_events_per_second", rate, "events/s",
                      asyncio.run(_postgres_baseline(url, rows)))
        p50, p99, base50, base99 = asyncio.run(_query_latency(str(Path(tmp) / "query")))
        figure("metrics_performance_30d_day_p50", p50, "ms", base50)
        figure("metrics_performance_30d_day_p99", p99, "ms", base99)
        app_dir = Path(tmp) / "application"
        app_dir.mkdir()
        with _service(f"sqlite:///{app_dir / 'botmon.db'}", str(app_dir)) as port:
            idle, busy, rate = asyncio.run(_application_latency(port))
        for q in (0.5, 0.99):
            figure(f"metrics_application_under_ingest_p{round(q * 100)}",
                  _nearest(busy, q), "ms", _nearest(idle, q))
        print(f"# GetApplicationMetrics: {len(busy)} calls under ingest of {rate:.0f} events/s "
              f"(RecordEvents of {APP_BATCH}, 2 writers), {len(idle)} idle", flush=True)


if __name__ == "__main__":
    main()
