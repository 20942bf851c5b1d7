"""What authentication and TLS cost, each against the same work without them in this run.

1. The gRPC interceptor: ``HealthService/GetHealth`` (answered from the probe cache) on
   two ports of one server process, built alike and serving the same servicer: one with
   the interceptor checking credentials and roles, one with it checking nothing (the
   baseline). Called
   with a static token, an HS256 JWT, and the internal credential with a forwarded
   identity (the gateway's calls); 32 calls in flight. Then the interceptor alone, in
   this process, in CPU time (``time.process_time``, which other load on the machine
   does not inflate): the same RPC path with and without the checks, the difference
   taken against the server's CPU per call of the unchecked RPC measured above.
2. TLS on the gateway: ``GET /status`` through a plain suite (health + gateway) and
   through one with ``BOTMON_TLS_CERT`` (HTTPS at the edge, TLS to the backend), over
   kept-alive connections.

Each variant is reported as calls per second and as the server processes' CPU time per
call (psutil), which other load on a shared machine disturbs far less than throughput.
Many short rounds measure every variant back to back (in a rotating order), and each
ratio is the median of the ratios within a round, so load that drifts over seconds
cancels; the absolute figures are medians over the rounds.

``python -m benchmarks.bench_security serve <on port> <off port>`` runs the gRPC server
alone (configured by the environment).
"""

from __future__ import annotations

import asyncio
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.cpu import read_cpu
from benchmarks.processes import (
    INTERNAL_TOKEN,
    Processes,
    free_port,
    wait_http,
    wait_port,
)

__all__ = ["main"]

SECONDS = float(os.environ.get("BOTMON_BENCH_SECONDS", "0.6"))
ROUNDS = 15
IN_FLIGHT = 32
HTTP_CONNECTIONS = 16
VIEWER = "bench-viewer-token-0123456789abcdef"
JWT_SECRET = "bench-jwt-secret-" + "0123456789abcdef" * 2


def _environment(data_dir: str) -> dict[str, str]:
    # Logging at make run's level (info), like every figure.
    return {**{k: v for k, v in os.environ.items() if not k.startswith("BOTMON_")},
            "BOTMON_DATA_DIR": data_dir, "BOTMON_API_TOKENS": f"{VIEWER}:viewer:bench",
            "BOTMON_JWT_SECRET": JWT_SECRET, "BOTMON_INTERNAL_TOKEN": INTERNAL_TOKEN,
            "BOTMON_LOG_LEVEL": "info", "BOTMON_PROBE_INTERVAL": "30",
            "BOTMON_RATE_LIMITS": "default=unlimited,health=unlimited",
            "PYTHONUNBUFFERED": "1"}


# ---- 1. the interceptor ----------------------------------------------------------------

def serve(on_port: int, off_port: int) -> None:
    """The health service's servicer on two ports: checked on ``on_port``, not on the other."""
    import grpc

    from botmon.health.v1 import health_service_pb2_grpc
    from botmon.runtime.config import Settings
    from botmon.runtime.credentials import Credentials
    from botmon.runtime.interceptors import ServerInterceptor
    from botmon.runtime.main import SWITCH_INTERVAL
    from botmon.runtime.server import run_until_signal
    from services.health.__main__ import create_server

    sys.setswitchinterval(SWITCH_INTERVAL)

    async def run() -> None:
        settings = Settings.from_env(dict(os.environ))
        # The service itself (its probes run in the background) on a port of its own.
        server = await create_server(settings, address="127.0.0.1:0")
        twins = []
        for port, credentials in ((on_port, Credentials.for_process(settings)),
                                  (off_port, None)):
            twin = grpc.aio.server(interceptors=[ServerInterceptor(credentials)])
            health_service_pb2_grpc.add_HealthServiceServicer_to_server(
                server.bindings[0].servicer, twin)
            twin.add_insecure_port(f"127.0.0.1:{port}")
            await twin.start()
            twins.append(twin)
        await run_until_signal(server)
        for twin in twins:
            await twin.stop(0)

    asyncio.run(run())


def _cpu(pids: list[int]) -> float:
    return sum(read_cpu(pids).seconds.values())


async def _rate(call, request, metadata, pids: list[int]) -> tuple[float, float]:
    """(calls/s, server CPU µs per call) of ``call`` with IN_FLIGHT outstanding, over SECONDS."""
    done = 0
    deadline = time.perf_counter() + SECONDS
    cpu = _cpu(pids)

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await call(request, timeout=5, metadata=metadata)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    return done / (time.perf_counter() - started), (_cpu(pids) - cpu) / done * 1e6


async def _rounds(variants: dict[str, object], measure) -> dict[str, list[tuple[float, float]]]:
    """``measure(variant)`` for every variant in each of ROUNDS rounds, order rotating."""
    names = list(variants)
    rates: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for index in range(ROUNDS):
        for name in names[index % len(names):] + names[:index % len(names)]:
            rates[name].append(await measure(variants[name]))
    return rates


def _report(prefix: str, rates: dict[str, list[tuple[float, float]]], unit: str) -> None:
    """Each variant's median rate and CPU per call; ratios are medians of per-round ratios."""
    names = list(rates)
    base = rates[names[0]]
    for name in names:
        ours = rates[name]
        for label, unit_, pick in (("", unit, 0), ("_server_cpu", "µs/call", 1)):
            value = statistics.median(r[pick] for r in ours)
            ratio = statistics.median(o[pick] / b[pick] for o, b in zip(ours, base, strict=True))
            print(f"{prefix}_{name}{label}: {value:.2f} {unit_} (baseline: "
                  f"{statistics.median(b[pick] for b in base):.2f}, ratio: {ratio:.3f})",
                  flush=True)


async def _interceptor(on_port: int, off_port: int, server_pid: int) -> None:
    import grpc
    import jwt

    from botmon.health.v1 import health_service_pb2 as pb
    from botmon.health.v1 import health_service_pb2_grpc

    token = jwt.encode({"sub": "bench", "role": "viewer", "exp": int(time.time()) + 3600},
                       JWT_SECRET, algorithm="HS256")
    variants = {
        "off": (off_port, ()),
        "static_token": (on_port, (("authorization", f"Bearer {VIEWER}"),)),
        "hs256_jwt": (on_port, (("authorization", f"Bearer {token}"),)),
        "internal_forwarded": (on_port, (("authorization", f"Bearer {INTERNAL_TOKEN}"),
                                         ("x-botmon-subject", "bench"),
                                         ("x-botmon-role", "viewer"))),
    }
    request = pb.GetHealthRequest()
    channels = {port: grpc.aio.insecure_channel(f"127.0.0.1:{port}") for port in (on_port,
                                                                                 off_port)}
    try:
        stubs = {port: health_service_pb2_grpc.HealthServiceStub(ch)
                 for port, ch in channels.items()}
        pids = [server_pid]
        for port, metadata in variants.values():  # warm-up, and a check that each is let in
            await _rate(stubs[port].GetHealth, request, metadata, pids)
        rates = await _rounds(variants, lambda variant: _rate(
            stubs[variant[0]].GetHealth, request, variant[1], pids))
    finally:
        for channel in channels.values():
            await channel.close()
    _report("grpc_get_health", rates, "calls/s")
    await _interceptor_cpu(statistics.median(c for _, c in rates["off"]))


async def _interceptor_cpu(server_cpu_us: float) -> None:
    """CPU µs per call of the interceptor with and without the checks, in this process."""
    from collections import namedtuple

    import grpc
    import jwt

    from botmon.runtime.config import Settings
    from botmon.runtime.credentials import Credentials
    from botmon.runtime.interceptors import ServerInterceptor

    settings = Settings.from_env(_environment(tempfile.gettempdir()))
    credentials = Credentials(settings, settings.api_tokens, INTERNAL_TOKEN)
    details = namedtuple("Details", "method invocation_metadata")

    async def behaviour(request, context):
        return request

    handler = grpc.unary_unary_rpc_method_handler(behaviour)

    async def continuation(_):
        return handler

    token = jwt.encode({"sub": "bench", "role": "viewer", "exp": int(time.time()) + 3600},
                       JWT_SECRET, algorithm="HS256")
    method = "/botmon.health.v1.HealthService/GetHealth"
    rid = ("x-request-id", "0123456789abcdef0123456789abcdef")
    variants = {
        "off": (None, (rid,)),
        "static_token": (credentials, (rid, ("authorization", f"Bearer {VIEWER}"))),
        "hs256_jwt": (credentials, (rid, ("authorization", f"Bearer {token}"))),
        "internal_forwarded": (credentials, (rid, ("authorization", f"Bearer {INTERNAL_TOKEN}"),
                                             ("x-botmon-subject", "bench"),
                                             ("x-botmon-role", "viewer"))),
    }
    calls = 20_000
    costs: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(5):
        for name, (checker, metadata) in variants.items():
            interceptor = ServerInterceptor(checker)
            call = details(method, metadata)
            started = time.process_time()
            for _ in range(calls):
                wrapped = await interceptor.intercept_service(continuation, call)
                await wrapped.unary_unary(None, None)
            costs[name].append((time.process_time() - started) / calls * 1e6)
    base = statistics.median(costs["off"])
    print(f"interceptor_off_cpu: {base:.2f} µs/call", flush=True)
    for name in list(variants)[1:]:
        extra = statistics.median(costs[name]) - base
        print(f"interceptor_{name}_extra_cpu: {extra:.2f} µs/call "
              f"({extra / server_cpu_us * 100:.1f} % of the unchecked RPC's "
              f"{server_cpu_us:.0f} µs of server CPU)", flush=True)


# ---- 2. TLS on the gateway ------------------------------------------------------------

def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA)."""
    cert, key = directory / "tls.pem", directory / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert),
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def _start_suite(procs: Processes, name: str, env: dict[str, str], scheme: str,
                 context: ssl.SSLContext | None) -> tuple[str, list[int]]:
    health, http = free_port(), free_port()
    env = {**env, "BOTMON_HEALTH_ADDR": f"127.0.0.1:{health}", "BOTMON_HTTP_ADDR":
           f"127.0.0.1:{http}", **{f"BOTMON_{c}_TARGET": "127.0.0.1:9"
                                   for c in ("METRICS", "ALERTS", "LOGS")}}
    backend = procs.start(f"{name}-health", [sys.executable, "-m", "services.health"], env)
    wait_port(health)
    gateway = procs.start(f"{name}-gateway", [sys.executable, "-m", "gateway"], env)
    base = f"{scheme}://127.0.0.1:{http}/api/v1/monitoring"
    if context is None:
        wait_http(f"{base}/status", procs, f"{name}-gateway", gateway, VIEWER)
    else:
        wait_port(http)
    return base, [backend.pid, gateway.pid]


async def _http_rate(url: str, context: ssl.SSLContext | None,
                     pids: list[int]) -> tuple[float, float]:
    import aiohttp

    done = 0
    connector = aiohttp.TCPConnector(limit=HTTP_CONNECTIONS, ssl=context or False)
    headers = {"Authorization": f"Bearer {VIEWER}"}
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker(until: float) -> None:
            nonlocal done
            while time.perf_counter() < until:
                async with session.get(url, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{url}: HTTP {response.status}")
                done += 1

        await asyncio.gather(*(worker(time.perf_counter() + 0.2)
                               for _ in range(HTTP_CONNECTIONS)))  # connect and warm up
        done = 0
        cpu = _cpu(pids)
        started = time.perf_counter()
        await asyncio.gather(*(worker(started + SECONDS) for _ in range(HTTP_CONNECTIONS)))
        return done / (time.perf_counter() - started), (_cpu(pids) - cpu) / done * 1e6


def _gateway_tls(workdir: Path) -> None:
    cert, key = _certificate(workdir)
    context = ssl.create_default_context(cafile=str(cert))
    with Processes(workdir) as procs:
        plain, plain_pids = _start_suite(procs, "plain", _environment(str(workdir / "plain")),
                                         "http", None)
        tls_env = {**_environment(str(workdir / "tls")), "BOTMON_TLS_CERT": str(cert),
                   "BOTMON_TLS_KEY": str(key), "BOTMON_TLS_CA": str(cert)}
        secure, tls_pids = _start_suite(procs, "tls", tls_env, "https", context)

        async def measure() -> None:
            for _ in range(100):  # the TLS gateway: until /status answers
                try:
                    await _http_rate_once(f"{secure}/status", context)
                    break
                except Exception:
                    await asyncio.sleep(0.2)
            rates = await _rounds({"plain": (plain, None, plain_pids),
                                   "tls": (secure, context, tls_pids)},
                                  lambda v: _http_rate(f"{v[0]}/status", v[1], v[2]))
            _report("gateway_status", rates, "requests/s")

        asyncio.run(measure())


async def _http_rate_once(url: str, context: ssl.SSLContext) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session, \
            session.get(url, headers={"Authorization": f"Bearer {VIEWER}"}, ssl=context) as r:
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status}")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="botmon-bench-security-") as tmp:
        workdir = Path(tmp)
        on_port, off_port = free_port(), free_port()
        with Processes(workdir) as procs:
            server = procs.start("grpc", [sys.executable, "-m", "benchmarks.bench_security",
                                          "serve", str(on_port), str(off_port)],
                                 _environment(str(workdir / "grpc")))
            wait_port(on_port)
            wait_port(off_port)
            asyncio.run(_interceptor(on_port, off_port, server.pid))
        _gateway_tls(workdir)


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(int(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
