"""REST ingest at the defaults of ``make run``: ``POST /logs`` and ``POST /metrics/events``
against a bare insert of the same rows, in the same run.

``botmon up`` as :mod:`benchmarks.bench_defaults` boots it (default settings, ``info``
logging, the real services, SQLite in a scratch data directory; only the listen
addresses moved to free ports, one operator token, and the ingest limit of
1200/minute raised out of the way). wrk loads each route at 50 connections with a Lua
script that posts one body over and over, its RFC 3339 timestamps moved to the current
second per request: 500 log lines (timestamp, level, service, message and two
metadata strings), or 500 request events (timestamp, method, route, status,
duration, bytes). Interleaved with each round of
wrk, the baseline: ``sqlite3``'s ``executemany`` of the same rows (one per line or
event, as the benchmarks of the gRPC ingest count them) in one transaction into a
WAL database without indexes. Each figure is the median of the rounds, in lines or
events per second, printed with its ratio to the baseline and the target (>= 0.3).

Then the same suite on PostgreSQL (``BOTMON_STORE_URL`` a scratch database on
``BOTMON_BENCH_DATABASE_URL``, else ``BOTMON_TEST_DATABASE_URL``, else the local
server), against ``COPY`` of the same rows into a bare table: stated, with no target.
The load average is printed before and after, as the machine may be shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg

from benchmarks.bench_defaults import API, ROUNDS, TOKEN, _wrk, start_suite, tree
from benchmarks.processes import Processes
from benchmarks.stores import scratch_database
from botmon.runtime.config import Rate, Settings

__all__ = ["main"]

BATCH = 500
#: Rows per baseline transaction: the same batch, repeated.
BASELINE_ROWS = 100_000
TARGET = 0.3
#: Stand-in in a body for the current second, filled in per request by the Lua script, so
#: that times increase as a platform's do (the stores index them).
SECOND = "@SECOND@"
_LUA = """
local f = io.open(os.getenv("BOTMON_BENCH_BODY"), "rb")
local template = f:read("*a")
f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BOTMON_BENCH_TOKEN")
request = function()
  local body = template:gsub("@SECOND@", os.date("!%Y-%m-%dT%H:%M:%S"))
  return wrk.format(nil, nil, nil, body)
end
"""
_LEVELS = ("debug", "info", "warn", "error")


def _logs() -> tuple[bytes, list[tuple]]:
    """A ``POST /logs`` body of BATCH lines, and the same lines as the store's rows."""
    now = int(time.time())
    lines, rows = [], []
    for i in range(BATCH):
        metadata = {"request_id": f"req_{i}", "user_id": f"user_{i % 50}"}
        line = {"timestamp": f"{SECOND}.{i:03d}Z", "level": _LEVELS[i % 4],
                "service": f"svc{i % 20}", "message": f"request processed order {i} in "
                                                      f"{i % 997} ms", "metadata": metadata}
        lines.append(line)
        text = json.dumps(metadata, separators=(",", ":"))
        rows.append((now * 10**9 + i * 10**6, i % 4, line["service"], line["message"], text,
                     len(line["message"]) + len(text) + 64))
    return json.dumps({"logs": lines}).encode(), rows


def _events() -> tuple[bytes, list[tuple]]:
    """A ``POST /metrics/events`` body of BATCH request events, and the same as rows."""
    now = int(time.time())
    events, rows = [], []
    for i in range(BATCH):
        event = {"type": "request", "timestamp": f"{SECOND}.{i:03d}Z",
                 "method": ("GET", "POST")[i % 2], "route": "/api/chat",
                 "status": (200, 200, 200, 404, 500)[i % 5], "duration_ms": 20.0 + i % 300,
                 "bytes": 512 + i}
        events.append(event)
        rows.append((now + i / 1000, event["method"], event["route"], event["status"],
                     event["duration_ms"], event["bytes"]))
    return json.dumps({"events": events}).encode(), rows


_LOG_TABLE = ("bare (id INTEGER PRIMARY KEY, ts INTEGER, level INTEGER, service TEXT, "
              "message TEXT, metadata TEXT, size INTEGER)",
              "INSERT INTO bare (ts, level, service, message, metadata, size) "
              "VALUES (?, ?, ?, ?, ?, ?)")
_EVENT_TABLE = ("bare (ts REAL, method TEXT, route TEXT, status INTEGER, duration_ms REAL, "
                "bytes INTEGER)", "INSERT INTO bare VALUES (?, ?, ?, ?, ?, ?)")


def _executemany(path: Path, table: tuple[str, str], rows: list[tuple]) -> float:
    """Rows per second of one ``executemany`` of BASELINE_ROWS rows into a fresh WAL table."""
    many = rows * (BASELINE_ROWS // len(rows))
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("DROP TABLE IF EXISTS bare")
        conn.execute(f"CREATE TABLE {table[0]}")
        started = time.perf_counter()
        conn.execute("BEGIN")
        conn.executemany(table[1], many)
        conn.execute("COMMIT")
        return len(many) / (time.perf_counter() - started)
    finally:
        conn.close()


_PG_TABLES = {
    "logs": ("bare (id BIGSERIAL PRIMARY KEY, ts BIGINT, level SMALLINT, service TEXT, "
             "message TEXT, metadata JSONB, size INTEGER)",
             ["ts", "level", "service", "message", "metadata", "size"]),
    "events": ("bare (ts DOUBLE PRECISION, method TEXT, route TEXT, status INTEGER, "
               "duration_ms DOUBLE PRECISION, bytes BIGINT)",
               ["ts", "method", "route", "status", "duration_ms", "bytes"]),
}


def _copy(url: str, kind: str, rows: list[tuple]) -> float:
    """Rows per second of one ``COPY`` of BASELINE_ROWS rows into a fresh bare table."""
    return asyncio.run(_copy_rows(url, kind, rows))


async def _copy_rows(url: str, kind: str, rows: list[tuple]) -> float:
    table, columns = _PG_TABLES[kind]
    many = rows * (BASELINE_ROWS // len(rows))
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute("DROP TABLE IF EXISTS bare")
        await conn.execute(f"CREATE TABLE {table}")
        started = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table("bare", records=many, columns=columns)
        return len(many) / (time.perf_counter() - started)
    finally:
        await conn.close()


def _rounds(url: str, script: Path, body: Path, pids: tuple[int, ...],
            baseline: Callable[[], float]) -> tuple[float, float, float]:
    """Medians of interleaved rounds: the suite's items per second, the baseline's, and the
    CPU of the suite's processes per item."""
    suite, bare = [], []
    env = {"BOTMON_BENCH_BODY": str(body), "BOTMON_BENCH_TOKEN": TOKEN}
    for _ in range(ROUNDS):
        bare.append(baseline())
        suite.append(_wrk(url, pids=pids, script=script, env=env))
    return (statistics.median(rate for rate, _ in suite) * BATCH, statistics.median(bare),
            statistics.median(cpu for _, cpu in suite) / BATCH)


def _report(name: str, value: float, baseline: float, cpu: float, unit: str, against: str,
            target: float | None) -> None:
    ratio = value / baseline if baseline else 0.0
    wanted = f", target: >= {target}" if target is not None else ""
    print(f"{name}: {value:.0f} {unit}/s ({against}: {baseline:.0f}, ratio: {ratio:.2f}"
          f"{wanted}); {cpu * 1e6:.1f} µs of the suite's CPU per item", flush=True)


def _default_ingest_limit() -> Rate:
    return Settings.from_env({}).rate_limits["ingest"]


def _default_ingest_cap() -> float:
    rate = _default_ingest_limit()
    return rate.limit / rate.window_seconds * BATCH


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _run(procs: Processes, tmp: Path, store: str, url: str | None,
         bodies: dict[str, tuple[Path, list[tuple]]], script: Path) -> None:
    extra = {"BOTMON_API_TOKENS": f"{TOKEN}:operator",
             "BOTMON_RATE_LIMITS": "ingest=1000000000/minute"}
    if url:
        extra["BOTMON_STORE_URL"] = url
    http_port, up = start_suite(procs, tmp, 1, **extra)
    pids = tree(up)
    routes = {"logs": (f"{API}/logs", "lines", _LOG_TABLE),
              "events": (f"{API}/metrics/events", "events", _EVENT_TABLE)}
    for kind, (path, unit, table) in routes.items():
        body, rows = bodies[kind]
        baseline = functools.partial(_copy, url, kind, rows) if url else \
            functools.partial(_executemany, tmp / "baseline.db", table, rows)
        value, bare, cpu = _rounds(f"http://127.0.0.1:{http_port}{path}", script, body, pids,
                                   baseline)
        name = f"rest_ingest_{'logs' if kind == 'logs' else 'metrics_events'}_{store}"
        _report(name, value, bare, cpu, unit, "COPY" if url else "executemany", None if url
                else TARGET)


def main() -> None:
    if shutil.which("wrk") is None:
        print("bench_rest_ingest: skipped (wrk is not installed: apt-get install wrk)",
              flush=True)
        return
    print(f"# load average before: {_load()} ({os.cpu_count()} cores); the ingest limit is "
          f"raised: at its default of {_default_ingest_limit()} per client a single client "
          f"is capped at {_default_ingest_cap():,.0f} lines/s with {BATCH}-line bodies",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="botmon-bench-rest-ingest-") as name:
        tmp = Path(name)
        script = tmp / "post.lua"
        script.write_text(_LUA)
        bodies = {}
        for kind, make in (("logs", _logs), ("events", _events)):
            body, rows = make()
            (tmp / f"{kind}.json").write_bytes(body)
            bodies[kind] = (tmp / f"{kind}.json", rows)
        with Processes(tmp) as procs:
            _run(procs, tmp, "sqlite", None, bodies, script)
        with contextlib.ExitStack() as scratch:
            try:
                url = scratch.enter_context(scratch_database())
            except (OSError, asyncpg.PostgresError) as exc:
                print(f"rest_ingest_postgres: skipped ({exc})", flush=True)
            else:
                with Processes(tmp) as procs:
                    _run(procs, tmp, "postgres", url, bodies, script)
    print(f"# load average after: {_load()}", flush=True)


if __name__ == "__main__":
    main()
