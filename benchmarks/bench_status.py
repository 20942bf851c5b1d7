"""``GET /status`` as ``make run`` serves it, against the one-call baseline of the same run.

``botmon up`` with default settings (``info`` logging, the real services, SQLite in a
scratch data directory; only the listen addresses moved to free ports), except that
Redis is on and the ``default`` class's limit (120/minute) is raised out of the way,
so that the gateway's Lua limiter runs as the baseline's does. The baseline is
``bench_defaults``'s bare Sanic handler behind a Redis Lua sliding-window limiter
making one ``grpc.aio`` call to a no-op servicer. wrk loads each at 50 connections in
interleaved rounds (baseline, suite, baseline, suite, …); the figure is the median of
the rounds' req/s, the ratio suite/baseline with its target (issue 12 item 2: >= 0.7).
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks.bench_defaults import (
    API,
    CONNECTIONS,
    ROUNDS,
    SECONDS,
    TOKEN,
    _target,
    _wrk,
    start_suite,
)
from benchmarks.bench_gateway import _start_redis
from benchmarks.processes import Processes, free_port, wait_port

__all__ = ["main"]

TARGET = 0.7


def _load() -> str:
    return "/".join(f"{figure:.1f}" for figure in os.getloadavg())


def main() -> None:
    if shutil.which("wrk") is None:
        print("bench_status: skipped (wrk is not installed: apt-get install wrk)", flush=True)
        return
    load_before = _load()
    with tempfile.TemporaryDirectory(prefix="botmon-bench-status-") as tmp, \
            Processes(Path(tmp)) as procs:
        work = Path(tmp)
        call_port, noop_port = free_port(), free_port()
        redis_url = _start_redis(procs, work)
        procs.start("noop", [sys.executable, "-m", "benchmarks.bench_gateway", "noop-grpc",
                             str(noop_port)])
        procs.start("call", [sys.executable, "-m", "benchmarks.bench_defaults", "call",
                             str(call_port), str(noop_port), redis_url])
        for port in (noop_port, call_port):
            wait_port(port)
        http_port, _ = start_suite(procs, work, 1, BOTMON_REDIS_URL=redis_url,
                              BOTMON_API_TOKENS=f"{TOKEN}:operator",
                              BOTMON_RATE_LIMITS="default=1000000000/minute")
        suite, baseline = [], []
        for _ in range(ROUNDS):
            baseline.append(_wrk(f"http://127.0.0.1:{call_port}/")[0])
            suite.append(_wrk(f"http://127.0.0.1:{http_port}{API}/status", TOKEN)[0])
    _target("defaults_status_rps", statistics.median(suite), statistics.median(baseline),
            TARGET)
    print(f"# rounds (req/s): baseline {', '.join(f'{r:.0f}' for r in baseline)}; "
          f"suite {', '.join(f'{r:.0f}' for r in suite)}", flush=True)
    print(f"# {CONNECTIONS} connections, {ROUNDS} interleaved rounds of {SECONDS}s by wrk, "
          f"{os.cpu_count()} CPUs; load average (1/5/15 min) {load_before} before and "
          f"{_load()} after (other work on the machine skews the figures)", flush=True)


if __name__ == "__main__":
    main()
