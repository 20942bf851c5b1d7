"""Issue 2's gateway figures, every server in its own process, all measured in one run.

Baselines: (a) a bare Sanic handler returning fixed JSON; (b) a bare Sanic handler
making one ``grpc.aio`` unary call to a no-op servicer in another process. Then the
gateway's ``GET /health`` (served from its snapshot; target >= 0.5x (a)); ``GET
/status`` routed to a no-op ``HealthService`` in another process, the like-for-like
of (b) (target >= 0.7x (b)), the gateway making the call because the no-op service
streams no ``WatchStatus``; ``GET /status`` of the real health service, which the
gateway answers from its ``WatchStatus`` copy (shown for reference); and that route with
the Redis rate limiter on (target >= 0.85x of it off). Load: ``wrk`` at 50
connections (an aiohttp client in its own process when wrk is absent).

``python -m benchmarks.bench_gateway <role> …`` runs one of the servers or the
fallback load generator; ``main()`` orchestrates them.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from benchmarks.processes import ROOT, Processes, figure, free_port, wait_http, wait_port

__all__ = ["main"]

CONNECTIONS = 50
SECONDS = float(os.environ.get("BOTMON_BENCH_SECONDS", "6"))
ROUNDS = 3
WARMUP_SECONDS = 1.0
TOKEN = "bench-viewer-token-0123456789abcdef"
FIXED = {"status": "healthy", "timestamp": "2024-01-15T10:00:00Z", "version": "1.0.0"}
API = "/api/v1/monitoring"


@dataclass
class Load:
    """What one load run measured."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    bad: int  # non-2xx responses and socket errors
    cpu_us: float = 0.0  # CPU time of the HTTP server's process per request


# ---- the servers under test (each runs in its own process) ----------------------

def serve_noop_grpc(port: int) -> None:
    """A ``grpc.aio`` server whose only RPC, Health/Check, does nothing but answer."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    reply = health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)

    class Noop(health_pb2_grpc.HealthServicer):
        async def Check(self, request, context):
            return reply

    async def run() -> None:
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(Noop(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    asyncio.run(run())


def serve_noop_health(port: int) -> None:
    """A no-op ``botmon.health.v1.HealthService``: fixed answers, no probes, no store.

    ``GetStatus`` returns a fixed one-entry list, so a gateway pointed here pays
    exactly what (b) pays on the backend side; ``WatchHealth`` streams a fixed
    snapshot each second (the gateway's ``/health`` stays current) and
    ``Heartbeat`` accepts the gateway's registration.
    """
    import grpc
    from google.protobuf import timestamp_pb2

    from botmon.health.v1 import health_pb2, health_service_pb2, health_service_pb2_grpc

    status = health_service_pb2.GetStatusResponse(services=[health_pb2.ServiceStatus(
        name="gateway", status="running", uptime_seconds=1, port=8080, pid=1,
        version="1.0.0", host="bench")])
    beat = health_service_pb2.HeartbeatResponse()

    class Noop(health_service_pb2_grpc.HealthServiceServicer):
        async def GetStatus(self, request, context):
            return status

        async def Heartbeat(self, request, context):
            return beat

        async def WatchHealth(self, request, context):
            while True:
                stamp = timestamp_pb2.Timestamp()
                stamp.GetCurrentTime()
                yield health_service_pb2.WatchHealthResponse(
                    health=health_service_pb2.GetDetailedHealthResponse(
                        status="healthy", timestamp=stamp, version="1.0.0"))
                await asyncio.sleep(1.0)

    async def run() -> None:
        server = grpc.aio.server()
        health_service_pb2_grpc.add_HealthServiceServicer_to_server(Noop(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    asyncio.run(run())


def serve_sanic(port: int, grpc_port: int | None = None) -> None:
    """Baseline (a) fixed JSON, or (b) with ``grpc_port``: one unary call, then fixed JSON."""
    from sanic import Sanic
    from sanic.response import json as json_response

    app = Sanic("bench_grpc" if grpc_port else "bench_bare")

    if grpc_port is None:
        @app.get("/")
        async def fixed(request):
            return json_response(FIXED)
    else:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        check = health_pb2.HealthCheckRequest()

        @app.before_server_start
        async def open_channel(app, _):
            app.ctx.channel = grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}")
            app.ctx.stub = health_pb2_grpc.HealthStub(app.ctx.channel)

        @app.after_server_stop
        async def close_channel(app, _):
            await app.ctx.channel.close()

        @app.get("/")
        async def one_call(request):
            await request.app.ctx.stub.Check(check, timeout=5)
            return json_response(FIXED)

    app.run(host="127.0.0.1", port=port, single_process=True, access_log=False, motd=False)


def generate_load(url: str, seconds: float, connections: int, token: str) -> None:
    """Fallback load generator: ``connections`` aiohttp clients; prints a JSON ``Load``."""
    import aiohttp

    async def run() -> Load:
        latencies: list[float] = []
        bad = 0
        deadline = time.perf_counter() + seconds
        headers = {"Authorization": f"Bearer {token}"}
        connector = aiohttp.TCPConnector(limit=connections)
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                         headers=headers) as session:
            async def client() -> None:
                nonlocal bad
                while (start := time.perf_counter()) < deadline:
                    try:
                        async with session.get(url) as response:
                            await response.read()
                            bad += not 200 <= response.status < 300
                    except (aiohttp.ClientError, TimeoutError):
                        bad += 1
                    latencies.append(time.perf_counter() - start)

            began = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(connections)))
            elapsed = time.perf_counter() - began
        latencies.sort()
        pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
        return Load(len(latencies) / elapsed, pick(0.50), pick(0.99), len(latencies), bad)

    print(json.dumps(asyncio.run(run()).__dict__))


# ---- orchestration ------------------------------------------------------------

_WRK_TIME = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _wrk_ms(text: str, percent: str) -> float:
    match = re.search(rf"^\s*{percent}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if not match:
        raise RuntimeError(f"no {percent}% latency in wrk output:\n{text}")
    return float(match.group(1)) * _WRK_TIME[match.group(2)]


def _wrk(url: str, seconds: float) -> Load:
    script = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--latency", "--timeout", "5s",
              "-H", f"Authorization: Bearer {TOKEN}", url]
    out = subprocess.run(script, capture_output=True, text=True, timeout=seconds + 30,
                         check=True).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    bad = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    bad += sum(int(n) for n in errors.groups()) if errors else 0
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return Load(rps, _wrk_ms(out, "50"), _wrk_ms(out, "99"), requests, bad)


def _aiohttp_load(url: str, seconds: float) -> Load:
    argv = [sys.executable, "-m", "benchmarks.bench_gateway", "load", url, str(seconds),
            str(CONNECTIONS), TOKEN]
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 60,
                         check=True).stdout
    return Load(**json.loads(out.strip().splitlines()[-1]))


def _cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def measure(urls: dict[str, tuple[str, int]]) -> dict[str, Load]:
    """Load each URL (served by process ``pid``) at 50 connections for ``SECONDS`` in all,
    in interleaved rounds.

    Interleaving spreads any change in the machine's other load over every figure
    alike, so the ratios stay fair. Per figure: requests/s over all rounds, the median
    of the rounds' p50, the worst of their p99, and the server process's CPU time per
    request (what a request costs the process, less swayed by its share of the cores).
    """
    load = _wrk if shutil.which("wrk") else _aiohttp_load
    for url, _ in urls.values():
        load(url, WARMUP_SECONDS)
    rounds: dict[str, list[Load]] = {name: [] for name in urls}
    cpu: dict[str, float] = dict.fromkeys(urls, 0.0)
    for _ in range(ROUNDS):
        for name, (url, pid) in urls.items():
            before = _cpu_seconds(pid)
            rounds[name].append(load(url, SECONDS / ROUNDS))
            cpu[name] += _cpu_seconds(pid) - before
    return {name: Load(rps=statistics.fmean(r.rps for r in runs),
                       p50_ms=statistics.median(r.p50_ms for r in runs),
                       p99_ms=max(r.p99_ms for r in runs),
                       requests=(n := sum(r.requests for r in runs)),
                       bad=sum(r.bad for r in runs), cpu_us=cpu[name] / max(1, n) * 1e6)
            for name, runs in rounds.items()}


def _suite_env(data_dir: Path, health_port: int, http_port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOTMON_")}
    env.update({
        "BOTMON_DATA_DIR": str(data_dir),
        "BOTMON_HEALTH_ADDR": f"127.0.0.1:{health_port}",
        "BOTMON_HTTP_ADDR": f"127.0.0.1:{http_port}",
        "BOTMON_API_TOKENS": f"{TOKEN}:viewer:bench",
        # Per-request info logs would measure the terminal, not the gateway.
        "BOTMON_LOG_LEVEL": "warning",
        "PYTHONUNBUFFERED": "1",
    })
    for name in ("metrics", "alerts", "logs"):  # not started: nothing listens there
        env[f"BOTMON_{name.upper()}_ADDR"] = f"127.0.0.1:{free_port()}"
    env.update(extra)
    return env


def _start_redis(procs: Processes, workdir: Path) -> str:
    exe = shutil.which("redis-server")
    if not exe:
        url = os.environ.get("BOTMON_BENCH_REDIS_URL")
        if not url:
            raise RuntimeError("needs redis-server on PATH or BOTMON_BENCH_REDIS_URL")
        return url
    port = free_port()
    procs.start("redis", [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no", "--dir", str(workdir)])
    wait_port(port)
    return f"redis://127.0.0.1:{port}/0"


def main() -> None:
    """Run every figure of issue 2 in one run and print them with their ratios."""
    py = sys.executable
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="botmon-bench-") as tmp, \
            Processes(Path(tmp)) as procs:
        work = Path(tmp)
        noop, bare, via_grpc = free_port(), free_port(), free_port()
        health, gw_off, gw_on = free_port(), free_port(), free_port()
        noop_health, gw_noop = free_port(), free_port()
        me = [py, "-m", "benchmarks.bench_gateway"]
        procs.start("noop-grpc", [*me, "noop-grpc", str(noop)])
        procs.start("noop-health", [*me, "noop-health", str(noop_health)])
        sanic_json = procs.start("sanic-json", [*me, "sanic", str(bare)])
        sanic_grpc = procs.start("sanic-grpc", [*me, "sanic", str(via_grpc), str(noop)])
        redis_url = _start_redis(procs, work)
        huge = "999999999/minute"
        procs.start("health", [py, "-m", "services.health"],
                    _suite_env(work / "health", health, gw_off, BOTMON_REDIS_URL=redis_url))
        off = procs.start("gateway-off", [py, "-m", "gateway"], _suite_env(
            work / "off", health, gw_off, BOTMON_REDIS_URL=redis_url,
            BOTMON_RATE_LIMITS="default=unlimited"))
        like = procs.start("gateway-noop", [py, "-m", "gateway"], _suite_env(
            work / "noop", noop_health, gw_noop, BOTMON_REDIS_URL=redis_url,
            BOTMON_RATE_LIMITS="default=unlimited"))
        on = procs.start("gateway-on", [py, "-m", "gateway"], _suite_env(
            work / "on", health, gw_on, BOTMON_REDIS_URL=redis_url,
            BOTMON_RATE_LIMITS=f"default={huge}"))
        wait_port(noop)
        wait_port(noop_health)
        wait_http(f"http://127.0.0.1:{bare}/", procs, "sanic-json", sanic_json, TOKEN)
        wait_http(f"http://127.0.0.1:{via_grpc}/", procs, "sanic-grpc", sanic_grpc, TOKEN)
        wait_http(f"http://127.0.0.1:{gw_off}{API}/health", procs, "gateway-off", off, TOKEN)
        wait_http(f"http://127.0.0.1:{gw_on}{API}/status", procs, "gateway-on", on, TOKEN)
        wait_http(f"http://127.0.0.1:{gw_noop}{API}/status", procs, "gateway-noop", like, TOKEN)

        runs = measure({
            "sanic_fixed_json": (f"http://127.0.0.1:{bare}/", sanic_json.pid),
            "sanic_one_grpc_call": (f"http://127.0.0.1:{via_grpc}/", sanic_grpc.pid),
            "gateway_health": (f"http://127.0.0.1:{gw_off}{API}/health", off.pid),
            "gateway_status_noop_backend": (f"http://127.0.0.1:{gw_noop}{API}/status", like.pid),
            "gateway_status_real_backend": (f"http://127.0.0.1:{gw_off}{API}/status", off.pid),
            "gateway_status_redis_limiter": (f"http://127.0.0.1:{gw_on}{API}/status", on.pid),
        })
    a, b = runs["sanic_fixed_json"], runs["sanic_one_grpc_call"]
    baselines = {"sanic_fixed_json": a, "sanic_one_grpc_call": a, "gateway_health": a,
                 "gateway_status_noop_backend": b, "gateway_status_real_backend": b,
                 "gateway_status_redis_limiter": runs["gateway_status_real_backend"]}
    for name, load in runs.items():
        base = baselines[name]
        figure(f"{name}_rps", load.rps, "req/s", base.rps)
        figure(f"{name}_p50", load.p50_ms, "ms", base.p50_ms)
        figure(f"{name}_p99", load.p99_ms, "ms", base.p99_ms)
        figure(f"{name}_server_cpu_per_request", load.cpu_us, "us", base.cpu_us)
        if load.bad:
            print(f"# warning: {name}: {load.bad} of {load.requests} responses were not 2xx")
    targets = (("gateway_health", "sanic_fixed_json", 0.5),
               ("gateway_status_noop_backend", "sanic_one_grpc_call", 0.7),
               ("gateway_status_redis_limiter", "gateway_status_real_backend", 0.85))
    for name, base, want in targets:
        ratio = runs[name].rps / runs[base].rps
        verdict = "met" if ratio >= want else "NOT met"
        print(f"# target {name} >= {want:.2f}x {base} (req/s): {ratio:.2f} {verdict}")
    print("# gateway_status_real_backend: /status of the real health service, answered from "
          "the gateway's WatchStatus copy; for reference, not the like-for-like of (b)")
    print(f"# {CONNECTIONS} connections, {SECONDS:g}s per figure in {ROUNDS} interleaved rounds "
          f"after {WARMUP_SECONDS:g}s warm-up, load by {'wrk' if shutil.which('wrk') else 'aiohttp'}, "
          f"{os.cpu_count()} CPUs, 1-min load average {load_before:.1f} before and "
          f"{os.getloadavg()[0]:.1f} after (other work on the machine skews the figures)")


if __name__ == "__main__":
    role, *rest = sys.argv[1:] or ["bench"]
    if role == "noop-grpc":
        serve_noop_grpc(int(rest[0]))
    elif role == "noop-health":
        serve_noop_health(int(rest[0]))
    elif role == "sanic":
        serve_sanic(int(rest[0]), int(rest[1]) if len(rest) > 1 else None)
    elif role == "load":
        generate_load(rest[0], float(rest[1]), int(rest[2]), rest[3])
    else:
        main()
