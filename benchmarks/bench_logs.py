"""Logs ingest and query speed.

- lines/s over IngestLogs (5 000 lines per message, two small metadata keys
  each) into SQLite and into PostgreSQL, the service in its own process;
  baselines: a bare ``executemany`` of the same rows into a table without
  indexes on the same kind of database (SQLite), and a bare ``COPY`` and
  ``executemany`` (PostgreSQL).
- With 1 000 000 lines stored (written by SQL in bulk, then indexed): p50/p99 of a
  filtered list (service + minimum level + 1 h range + limit 100, with the exact
  total) at the gRPC layer and through the gateway, and of ``q`` text searches
  (a rare token over the whole store; a common word within service + 1 h);
  baselines: the same SQL statements run directly on the database (for gRPC),
  and the gRPC figure (for the gateway).

``BOTMON_BENCH_LOG_LINES`` sets the ingest size (default 100 000). PostgreSQL:
``BOTMON_BENCH_DATABASE_URL`` (else ``BOTMON_TEST_DATABASE_URL``, else
postgresql://postgres@127.0.0.1:5432/postgres); a scratch database is created and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import httpx

from benchmarks.processes import INTERNAL_TOKEN, figure, free_port, internal_channel
from benchmarks.stores import scratch_database
from botmon.logs.v1 import log_entry_pb2, logs_service_pb2, logs_service_pb2_grpc
from botmon.runtime.store import SqliteDatabase
from services.logs.query import build_filter, build_query
from services.logs.sql import list_sql, span_sql
from services.logs.sqlite_store import SCHEMA, SqliteDialect, SqliteLogStore

LINES = int(os.environ.get("BOTMON_BENCH_LOG_LINES", "100000"))
PER_MESSAGE = 5000
STORED = 1_000_000
QUERIES = 150
HOUR_NS = 3600 * 10**9
SPAN_NS = 24 * HOUR_NS
ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-viewer-token-0123456789abcdef"
WORDS = ("timeout", "request", "connection", "payment", "cache", "retry", "session", "render")




def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


# -- ingest ------------------------------------------------------------------------------

def _messages(n: int) -> tuple[list[logs_service_pb2.IngestLogsRequest], list[tuple]]:
    """IngestLogs messages of ``n`` lines, and the same lines as table rows."""
    base = time.time() - 3600
    messages, rows, batch = [], [], []
    for i in range(n):
        entry = log_entry_pb2.LogEntry(level=("debug", "info", "warn", "error")[i % 4],
                                       service=f"svc{i % 20}",
                                       message=f"{WORDS[i % 8]} processed order {i} for "
                                               f"user_{i % 5000} in {i % 997} ms")
        entry.timestamp.FromNanoseconds(int((base + i * 1e-3) * 1e9))
        entry.metadata.update({"request_id": f"req_{i}", "user_id": f"user_{i % 5000}"})
        batch.append(entry)
        rows.append((entry.timestamp.ToNanoseconds(), i % 4, entry.service, entry.message,
                     json.dumps({"request_id": f"req_{i}", "user_id": f"user_{i % 5000}"},
                                separators=(",", ":")), 120))
        if len(batch) == PER_MESSAGE:
            messages.append(logs_service_pb2.IngestLogsRequest(logs=batch))
            batch = []
    if batch:
        messages.append(logs_service_pb2.IngestLogsRequest(logs=batch))
    return messages, rows


@contextmanager
def _service(env: dict[str, str]):
    """``python -m services.logs`` with ``env`` (which may change the log level); yields its
    port."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "services.logs"], cwd=ROOT,
        env={**os.environ, "BOTMON_LOG_LEVEL": "warning", **env,
             "BOTMON_LOGS_ADDR": f"127.0.0.1:{port}", "BOTMON_INTERNAL_TOKEN": INTERNAL_TOKEN,
             "BOTMON_HEALTH_TARGET": "127.0.0.1:9", "BOTMON_METRICS_TARGET": "127.0.0.1:9",
             "BOTMON_LOG_RETENTION": "default=3650d",
             "BOTMON_LOG_RETENTION_INTERVAL": "3600"})
    try:
        yield port
    finally:
        process.terminate()
        process.wait(30)


async def _ingest(port: int, messages) -> float:
    async with internal_channel(f"127.0.0.1:{port}") as channel:
        await asyncio.wait_for(channel.channel_ready(), 30)
        stub = logs_service_pb2_grpc.LogsServiceStub(channel)
        started = time.perf_counter()
        reply = await stub.IngestLogs(iter(messages), timeout=300)
        elapsed = time.perf_counter() - started
    assert reply.accepted == LINES, reply
    return LINES / elapsed


def _sqlite_baseline(path: Path, rows: list[tuple]) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE bare (id INTEGER PRIMARY KEY, ts INTEGER, level INTEGER, "
                 "service TEXT, message TEXT, metadata TEXT, size INTEGER)")
    started = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO bare (ts, level, service, message, metadata, size) "
                     "VALUES (?, ?, ?, ?, ?, ?)", rows)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return len(rows) / elapsed


async def _postgres_baselines(url: str, rows: list[tuple]) -> tuple[float, float]:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute("CREATE TABLE bare (id BIGSERIAL PRIMARY KEY, ts BIGINT, "
                           "level SMALLINT, service TEXT, message TEXT, metadata JSONB, "
                           "size INTEGER)")
        columns = ["ts", "level", "service", "message", "metadata", "size"]
        started = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table("bare", records=rows, columns=columns)
        copy = len(rows) / (time.perf_counter() - started)
        subset = rows[:50_000]
        started = time.perf_counter()
        async with conn.transaction():
            await conn.executemany("INSERT INTO bare (ts, level, service, message, metadata, "
                                   "size) VALUES ($1, $2, $3, $4, $5, $6)", subset)
        many = len(subset) / (time.perf_counter() - started)
    finally:
        await conn.close()
    return copy, many




# -- 1 000 000 stored lines -------------------------------------------------------------

def _bulk_sqlite(path: Path, start_ns: int) -> None:
    """Write STORED lines with one SQL statement, then build the indexes once."""
    async def schema() -> None:
        store = SqliteLogStore(path, readers=1)
        await store.open()
        await store.close()
    asyncio.run(schema())
    words = " ".join(f"WHEN {i} THEN '{w}'" for i, w in enumerate(WORDS))
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA cache_size=-262144")
    conn.execute("DROP INDEX logs_entries_service_level_ts")
    conn.execute("DROP INDEX logs_entries_level_ts")
    conn.execute("BEGIN")
    conn.execute(f"""
        WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM c WHERE x < {STORED - 1})
        INSERT INTO logs_entries (id, ts, level, service, message, metadata, size)
        SELECT x + 1, {start_ns} + x * {SPAN_NS // STORED},
               CASE WHEN x % 20 < 8 THEN 0 WHEN x % 20 < 16 THEN 1
                    WHEN x % 20 < 19 THEN 2 ELSE 3 END,
               'svc' || ((x * 2654435761 / 65536) % 20),
               (CASE x % 8 {words} END) || ' processed order ' || ((x * 48271) % 1000003)
                   || ' for user_' || (x % 5000) || ' in ' || (x % 997) || ' ms',
               json_object('request_id', 'req_' || x, 'user_id', 'user_' || (x % 5000)),
               120
        FROM c""")
    conn.execute(f"INSERT INTO logs_usage (shard, entries, bytes) VALUES (0, {STORED}, "
                 f"{STORED * 120})")
    conn.execute("COMMIT")
    conn.executescript(SCHEMA)  # re-creates the two indexes
    conn.execute("INSERT INTO logs_fts (logs_fts) VALUES ('rebuild')")
    conn.execute(f"UPDATE logs_fts_state SET indexed_id = {STORED}")
    conn.execute("ANALYZE")
    conn.close()


def _filtered(rng: random.Random, start_ns: int) -> dict:
    hour = start_ns + rng.randrange(23) * HOUR_NS
    return {"service": f"svc{rng.randrange(20)}", "level": rng.choice(["info", "warn"]),
            "start": hour, "end": hour + HOUR_NS}


def _rare(rng: random.Random, start_ns: int) -> dict:
    x = rng.randrange(STORED)
    return {"q": str((x * 48271) % 1000003)}


def _common(rng: random.Random, start_ns: int) -> dict:
    return {**_filtered(rng, start_ns), "q": rng.choice(WORDS)}


def _request(shape: dict) -> logs_service_pb2.ListLogsRequest:
    request = logs_service_pb2.ListLogsRequest(limit=100, service=shape.get("service", ""),
                                               level=shape.get("level", ""),
                                               q=shape.get("q", ""))
    if "start" in shape:
        request.start_time.FromNanoseconds(shape["start"])
        request.end_time.FromNanoseconds(shape["end"])
    return request


async def _grpc_latency(port: int, shapes: list[dict]) -> list[float]:
    async with internal_channel(f"127.0.0.1:{port}") as channel:
        await asyncio.wait_for(channel.channel_ready(), 30)
        stub = logs_service_pb2_grpc.LogsServiceStub(channel)
        await stub.ListLogs(_request(shapes[0]), timeout=30)  # warm up
        samples = []
        for shape in shapes:
            started = time.perf_counter()
            reply = await stub.ListLogs(_request(shape), timeout=30)
            samples.append((time.perf_counter() - started) * 1000)
            assert reply.total >= len(reply.logs)
    return samples


async def _sql_latency(path: Path, shapes: list[dict]) -> list[float]:
    """The same count and page statements the store runs, straight on SQLite."""
    db = SqliteDatabase(path)
    samples = []
    try:
        for shape in shapes:
            query = build_query(build_filter(shape.get("level", ""), shape.get("service", ""),
                                             shape.get("q", ""), {}),
                                start=shape.get("start"), end=shape.get("end"), order="desc",
                                limit=100, cursor="")
            def run(conn, query=query):
                id_span = None
                if query.filter.terms and query.filter.service:
                    id_span = conn.execute(*span_sql(query, STORED, SqliteDialect(),
                                                     "logs_entries")).fetchone()
                sql = list_sql(query, STORED, SqliteDialect(), "logs_entries", id_span)
                conn.execute(sql.count, sql.count_params).fetchone()
                conn.execute(sql.page, sql.page_params).fetchall()
            started = time.perf_counter()
            await db.run(run)
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        await db.close()
    return samples


@contextmanager
def _gateway(logs_port: int, log_level: str = "warning"):
    """The gateway in front of ``logs_port``, rate limits lifted; at ``info`` (``make run``'s
    level) its access log goes to /dev/null."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway"], cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL if log_level == "info" else None,
        env={**os.environ, "BOTMON_HTTP_ADDR": f"127.0.0.1:{port}",
             "BOTMON_INTERNAL_TOKEN": INTERNAL_TOKEN,
             "BOTMON_LOGS_TARGET": f"127.0.0.1:{logs_port}", "BOTMON_LOG_LEVEL": log_level,
             "BOTMON_API_TOKENS": f"{TOKEN}:viewer",
             "BOTMON_RATE_LIMITS": "logs=unlimited,default=unlimited",
             "BOTMON_HEALTH_TARGET": "127.0.0.1:9", "BOTMON_METRICS_TARGET": "127.0.0.1:9",
             "BOTMON_ALERTS_TARGET": "127.0.0.1:9"})
    try:
        yield port
    finally:
        process.terminate()
        process.wait(30)


def _params(shape: dict) -> dict:
    params = {"limit": 100, **{k: shape[k] for k in ("service", "level", "q") if k in shape}}
    if "start" in shape:
        params["start_time"] = f"{shape['start'] / 1e9:.0f}"
        params["end_time"] = f"{shape['end'] / 1e9:.0f}"
    return params


async def _http_latency(port: int, shapes: list[dict]) -> list[float]:
    url = f"http://127.0.0.1:{port}/api/v1/monitoring/logs"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(timeout=30) as http:
        for _ in range(100):
            try:
                if (await http.get(url, headers=headers, params=_params(shapes[0]))
                        ).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
        samples = []
        for shape in shapes:
            started = time.perf_counter()
            reply = await http.get(url, headers=headers, params=_params(shape))
            samples.append((time.perf_counter() - started) * 1000)
            assert reply.status_code == 200, reply.text
    return samples


def _queries(tmp: str) -> None:
    path = Path(tmp) / "million" / "botmon.db"
    path.parent.mkdir()
    start_ns = time.time_ns() - SPAN_NS
    started = time.monotonic()
    _bulk_sqlite(path, start_ns)
    print(f"(1 000 000 lines written and indexed in {time.monotonic() - started:.1f}s)",
          flush=True)
    rng = random.Random(11)
    kinds = {"filtered": _filtered, "q_rare_token": _rare, "q_common_word_filtered": _common}
    shapes = {kind: [make(rng, start_ns) for _ in range(QUERIES)] for kind, make in kinds.items()}
    with _service({"BOTMON_STORE_URL": f"sqlite:///{path}"}) as port:
        for kind, kind_shapes in shapes.items():
            grpc_ms = _percentiles(asyncio.run(_grpc_latency(port, kind_shapes)))
            sql_ms = _percentiles(asyncio.run(_sql_latency(path, kind_shapes)))
            figure(f"logs_list_{kind}_grpc_p50", grpc_ms[0], "ms", sql_ms[0])
            figure(f"logs_list_{kind}_grpc_p99", grpc_ms[1], "ms", sql_ms[1])
            if kind == "filtered":
                with _gateway(port) as http_port:
                    http_ms = _percentiles(asyncio.run(_http_latency(http_port, kind_shapes)))
                figure("logs_list_filtered_gateway_p50", http_ms[0], "ms", grpc_ms[0])
                figure("logs_list_filtered_gateway_p99", http_ms[1], "ms", grpc_ms[1])


def main() -> None:
    messages, rows = _messages(LINES)
    with tempfile.TemporaryDirectory(prefix="botmon-bench-logs-") as tmp:
        db = Path(tmp) / "ingest" / "botmon.db"
        db.parent.mkdir()
        with _service({"BOTMON_STORE_URL": f"sqlite:///{db}"}) as port:
            rate = asyncio.run(_ingest(port, messages))
        figure("logs_ingest_sqlite_lines_per_second", rate, "lines/s",
              _sqlite_baseline(Path(tmp) / "baseline.db", rows))
        with contextlib.ExitStack() as scratch:
            try:
                url = scratch.enter_context(scratch_database())
            except (OSError, asyncpg.PostgresError) as exc:
                print(f"logs_ingest_postgres_lines_per_second: skipped ({exc})", flush=True)
            else:
                with _service({"BOTMON_STORE_URL": url}) as port:
                    rate = asyncio.run(_ingest(port, messages))
                copy, many = asyncio.run(_postgres_baselines(url, rows))
                figure("logs_ingest_postgres_lines_per_second", rate, "lines/s", copy)
                figure("logs_ingest_postgres_vs_executemany_lines_per_second", rate, "lines/s",
                      many)
        _queries(tmp)


if __name__ == "__main__":
    main()
