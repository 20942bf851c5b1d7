"""The suite as ``make run`` boots it, loaded with wrk, against baselines started in the same run.

``botmon up`` with default settings (``info`` logging, the real services, SQLite
in a scratch data directory; only the listen addresses moved to free ports), and
a bare Sanic app in its own process whose handler returns fixed JSON. wrk loads
each at 50 connections in interleaved rounds (bare, suite, bare, suite, …); the
figure is the median of the rounds' req/s, the ratio suite/bare with its target.

Then the same with ``BOTMON_GATEWAY_WORKERS=2``: the scaling from one gateway worker
to two. Then ``GET /logs?limit=100`` with 10,000 lines stored (through ``POST /logs``)
against a bare Sanic handler that passes a Redis Lua sliding-window limiter and makes
one ``grpc.aio`` call to a no-op servicer, and ``GET /status`` against the same; for
these figures the suite runs with Redis and its read, ingest and default limits raised
(at the defaults, 30 and 120 requests a minute per client would answer most of wrk's
requests 429), so both sides pay for one Lua call. Beside the
rates, the CPU time per request of each side's processes over the same rounds (the
suite's gateway and services; the baseline's Sanic app and no-op servicer): a figure
that other load on the machine changes less than the rates. ``GET /logs`` on 1,000,000
lines (p99 at 50 connections, issue 12) is measured by ``bench_search`` (its no-filter
case). ``python -m benchmarks.bench_defaults bare <port>`` runs the bare app alone.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from benchmarks.bench_gateway import _start_redis
from benchmarks.cpu import read_cpu
from benchmarks.processes import Processes, free_port, wait_port

__all__ = ["main", "start_suite", "tree"]

ROOT = Path(__file__).resolve().parents[1]
SECONDS = int(os.environ.get("BOTMON_BENCH_SECONDS", "5"))
ROUNDS = int(os.environ.get("BOTMON_BENCH_ROUNDS", "3"))
CONNECTIONS = 50
API = "/api/v1/monitoring"
HEALTH = f"{API}/health"
TOKEN = "bench-operator-token-0123456789abcdef"


def bare(port: int) -> None:
    """A Sanic app answering GET HEALTH with fixed JSON, nothing else."""
    from sanic import Sanic
    from sanic.response import json

    app = Sanic("bare_health", configure_logging=False)
    app.config.update({"MOTD": False, "ACCESS_LOG": False})

    @app.get(HEALTH)
    async def health(request):
        return json({"status": "healthy", "timestamp": "2026-01-01T00:00:00Z"})

    app.run(host="127.0.0.1", port=port, single_process=True, access_log=False)


_WINDOW = """
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, now - 60000)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], 60000)
return 1
"""


def bare_call(port: int, grpc_port: int, redis_url: str) -> None:
    """A Sanic handler behind a Redis Lua sliding-window limiter like the gateway's, making
    one ``grpc.aio`` call to a no-op servicer, then answering fixed JSON."""
    import itertools

    import grpc
    import redis.asyncio as aioredis
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from sanic import Sanic
    from sanic.response import json

    app = Sanic("bare_call", configure_logging=False)
    app.config.update({"MOTD": False, "ACCESS_LOG": False})
    check = health_pb2.HealthCheckRequest()
    ids = itertools.count()

    @app.before_server_start
    async def open_clients(app, _):
        app.ctx.channel = grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}")
        app.ctx.stub = health_pb2_grpc.HealthStub(app.ctx.channel)
        app.ctx.redis = aioredis.Redis.from_url(redis_url, socket_timeout=5)
        app.ctx.window = app.ctx.redis.register_script(_WINDOW)

    @app.get("/")
    async def one_call(request):
        allowed = await request.app.ctx.window(
            keys=["bench:bare"], args=[int(time.time() * 1000), 10**9, next(ids)])
        if not allowed:
            return json({"error": "rate limited"}, status=429)
        await request.app.ctx.stub.Check(check, timeout=5)
        return json({"status": "ok"})

    app.run(host="127.0.0.1", port=port, single_process=True, access_log=False)


_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
_REQUESTS = re.compile(r"(\d+) requests in")


def _wrk(url: str, token: str = "", pids: tuple[int, ...] = (), *,
         script: Path | None = None, env: dict[str, str] | None = None) -> tuple[float, float]:
    """req/s of one wrk round, and the CPU seconds ``pids`` used per request meanwhile;
    ``script`` is a wrk Lua script (e.g. one that posts a body), ``env`` its environment."""
    auth = ["-H", f"Authorization: Bearer {token}"] if token else []
    lua = ["-s", str(script)] if script else []
    before = read_cpu(pids)
    out = subprocess.run(["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{SECONDS}s", *auth, *lua, url],
                         capture_output=True, text=True, timeout=SECONDS + 60,
                         env={**os.environ, **(env or {})}).stdout
    after = read_cpu(pids)
    match, requests = _RATE.search(out), _REQUESTS.search(out)
    if not match or "Non-2xx" in out:
        print(f"  wrk: {out.strip()[-300:]}", flush=True)
    used = sum(after.seconds[p] - before.seconds.get(p, 0.0) for p in after.seconds)
    return (float(match.group(1)) if match else 0.0,
            used / int(requests.group(1)) if requests and int(requests.group(1)) else 0.0)


def tree(proc: subprocess.Popen) -> tuple[int, ...]:
    """``proc`` and every process it started."""
    parent = psutil.Process(proc.pid)
    return (proc.pid, *(child.pid for child in parent.children(recursive=True)))


def _target(name: str, value: float, baseline: float, target: float) -> None:
    ratio = value / baseline if baseline else 0.0
    print(f"{name}: {value:.0f} req/s (baseline: {baseline:.0f}, ratio: {ratio:.2f}, "
          f"target: >= {target})", flush=True)


def start_suite(procs: Processes, workdir: Path, workers: int,
           **extra: str) -> tuple[int, subprocess.Popen]:
    """``botmon up`` at defaults with ``workers`` gateway workers; its HTTP port and process."""
    http_port = free_port()
    env = {"BOTMON_DATA_DIR": str(workdir / f"data{workers}{len(extra)}"),
           "BOTMON_HTTP_ADDR": f"127.0.0.1:{http_port}",
           **{f"BOTMON_{s}_ADDR": f"127.0.0.1:{free_port()}"
              for s in ("HEALTH", "METRICS", "ALERTS", "LOGS", "EXPORT")}, **extra}
    if workers > 1:
        env["BOTMON_GATEWAY_WORKERS"] = str(workers)
    proc = procs.start(f"suite{workers}{len(extra)}", [sys.executable, "-m", "botmon.cli", "up"],
                       {**os.environ, **env})
    wait_port(http_port, timeout=60)
    time.sleep(3)  # the first health round
    return http_port, proc


def _store_lines(http_port: int, token: str, lines: int) -> None:
    for start in range(0, lines, 500):
        body = {"logs": [{"level": ("debug", "info", "warn", "error")[i % 4],
                          "service": f"svc{i % 20}", "message": f"line {i} processed",
                          "metadata": {"request_id": f"req_{i}"}}
                         for i in range(start, min(lines, start + 500))]}
        reply = httpx.post(f"http://127.0.0.1:{http_port}{API}/logs", json=body, timeout=60,
                           headers={"Authorization": f"Bearer {token}"})
        reply.raise_for_status()


def main() -> None:
    if shutil.which("wrk") is None:
        print("bench_defaults: skipped (wrk is not installed: apt-get install wrk)", flush=True)
        return
    with tempfile.TemporaryDirectory(prefix="botmon-bench-defaults-") as tmp, \
            Processes(Path(tmp)) as bare_procs:
        bare_port, call_port, noop_port = free_port(), free_port(), free_port()
        redis_url = _start_redis(bare_procs, Path(tmp))
        bare_procs.start("bare", [sys.executable, "-m", "benchmarks.bench_defaults", "bare",
                                  str(bare_port)])
        noop = bare_procs.start("noop", [sys.executable, "-m", "benchmarks.bench_gateway",
                                         "noop-grpc", str(noop_port)])
        call = bare_procs.start("call", [sys.executable, "-m", "benchmarks.bench_defaults",
                                         "call", str(call_port), str(noop_port), redis_url])
        for port in (bare_port, noop_port, call_port):
            wait_port(port)
        medians = {}
        for workers in (1, 2):
            with Processes(Path(tmp)) as procs:
                http_port, _ = start_suite(procs, Path(tmp), workers)
                suite, baseline = [], []
                for _ in range(ROUNDS):
                    baseline.append(_wrk(f"http://127.0.0.1:{bare_port}{HEALTH}")[0])
                    suite.append(_wrk(f"http://127.0.0.1:{http_port}{HEALTH}")[0])
            medians[workers] = statistics.median(suite)
            if workers == 1:
                _target("defaults_health_rps", medians[1], statistics.median(baseline), 0.5)
        print(f"defaults_health_rps_2_workers: {medians[2]:.0f} req/s "
              f"({medians[2] / medians[1]:.2f}x 1 worker on this {os.cpu_count()}-core machine)",
              flush=True)
        # GET /logs and GET /status: the defaults, except the read and default limits
        # (30 and 120/minute) raised out of the way and Redis on, so that the gateway's
        # Lua limiter runs as the baseline's does.
        with Processes(Path(tmp)) as procs:
            http_port, up = start_suite(procs, Path(tmp), 1, BOTMON_REDIS_URL=redis_url,
                                        BOTMON_API_TOKENS=f"{TOKEN}:operator",
                                        BOTMON_RATE_LIMITS="logs=1000000000/minute,"
                                                           "ingest=1000000000/minute,"
                                                           "default=1000000000/minute")
            _store_lines(http_port, TOKEN, 10_000)
            suite_pids, bare_pids = tree(up), (call.pid, noop.pid)
            for name, path, target in (("logs_limit_100", "/logs?limit=100", 0.5),
                                       ("status", "/status", 0.7)):
                suite, baseline = [], []
                for _ in range(ROUNDS):
                    baseline.append(_wrk(f"http://127.0.0.1:{call_port}/", pids=bare_pids))
                    suite.append(_wrk(f"http://127.0.0.1:{http_port}{API}{path}", TOKEN,
                                      suite_pids))
                _report_rounds(name, suite, baseline, target)
    print(f"# {CONNECTIONS} connections, {ROUNDS} interleaved rounds of {SECONDS}s by wrk, "
          f"{os.cpu_count()} CPUs; load average (1 min) {os.getloadavg()[0]:.1f} after",
          flush=True)


def _report_rounds(name: str, suite: list[tuple[float, float]],
                   baseline: list[tuple[float, float]], target: float) -> None:
    """The median req/s against the baseline's, and the CPU per request of the suite's
    processes against the baseline's two."""
    _target(f"defaults_{name}_rps", statistics.median(r for r, _ in suite),
            statistics.median(r for r, _ in baseline), target)
    cpu, bare_cpu = (statistics.median(c for _, c in rounds) * 1000
                     for rounds in (suite, baseline))
    print(f"defaults_{name}_cpu_per_request: {cpu:.2f} ms (baseline: {bare_cpu:.2f} ms; "
          f"the rate ratio it allows on the same cores: "
          f"{bare_cpu / cpu if cpu else 0.0:.2f}, target: >= {target})", flush=True)

if __name__ == "__main__":
    if sys.argv[1:2] == ["bare"]:
        bare(int(sys.argv[2]))
    elif sys.argv[1:2] == ["call"]:
        bare_call(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    else:
        main()
