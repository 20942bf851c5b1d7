"""The health service answering from its probe cache, against a no-op RPC on the same server.

Baseline: ``grpc.health.v1.Health/Check`` of the health service's own server (a lookup
in a dict: the floor of any unary call there). Then ``GetHealth``,
``GetDetailedHealth`` and ``GetStatus``, each served from the cached probe round
(the probes themselves run every 30 s in the background, never per request). The
server runs in its own process; the client keeps 32 calls in flight.

``python -m benchmarks.bench_health serve <port> <data dir>`` runs the server alone.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.processes import INTERNAL_TOKEN, internal_channel

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]
SECONDS = float(os.environ.get("BOTMON_BENCH_SECONDS", "4"))
IN_FLIGHT = 32


def serve(port: int, data_dir: str) -> None:
    from botmon.runtime.config import Settings
    from botmon.runtime.server import run_until_signal
    from services.health.__main__ import create_server
    from services.health.config import HealthSettings

    async def run() -> None:
        settings = Settings.from_env({}, data_dir=Path(data_dir), probe_interval=30.0,
                                     internal_token=os.environ["BOTMON_INTERNAL_TOKEN"])
        server = await create_server(settings, address=f"127.0.0.1:{port}",
                                     health_settings=HealthSettings())
        await run_until_signal(server)

    asyncio.run(run())


async def _load(call, request) -> tuple[float, float, float]:
    """(calls/s, p50 ms, p99 ms) of ``call(request)`` with IN_FLIGHT calls outstanding."""
    latencies: list[float] = []
    deadline = time.perf_counter() + SECONDS

    async def worker() -> None:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            await call(request, timeout=5)
            latencies.append(time.perf_counter() - start)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100)
    return len(latencies) / elapsed, cuts[49] * 1000, cuts[98] * 1000


async def _measure(port: int) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from botmon.health.v1 import health_service_pb2 as pb
    from botmon.health.v1 import health_service_pb2_grpc

    async with internal_channel(f"127.0.0.1:{port}") as channel:
        checks = health_pb2_grpc.HealthStub(channel)
        for _ in range(200):  # until the first probe round has made it SERVING
            try:
                reply = await checks.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    break
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.05)
        stub = health_service_pb2_grpc.HealthServiceStub(channel)
        await _load(checks.Check, health_pb2.HealthCheckRequest())  # warm-up
        base, base50, base99 = await _load(checks.Check, health_pb2.HealthCheckRequest())
        _report("grpc_health_check", (base, base50, base99), (base, base50, base99))
        for name, call, request in (
                ("get_health", stub.GetHealth, pb.GetHealthRequest()),
                ("get_detailed_health", stub.GetDetailedHealth, pb.GetDetailedHealthRequest()),
                ("get_status", stub.GetStatus, pb.GetStatusRequest())):
            _report(name, await _load(call, request), (base, base50, base99))


def _report(name: str, figures: tuple[float, float, float],
            baseline: tuple[float, float, float]) -> None:
    for (label, unit, digits), value, base in zip(
            (("", "calls/s", 0), ("_p50", "ms", 2), ("_p99", "ms", 2)), figures, baseline,
            strict=True):
        print(f"{name}{label}: {value:.{digits}f} {unit} "
              f"(baseline: {base:.{digits}f}, ratio: {value / base:.2f})", flush=True)

def main() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="botmon-bench-health-") as data_dir:
        server = subprocess.Popen([sys.executable, "-m", "benchmarks.bench_health", "serve",
                                   str(port), data_dir], cwd=ROOT,
                                  stderr=subprocess.DEVNULL,
                                  env={**os.environ, "BOTMON_INTERNAL_TOKEN": INTERNAL_TOKEN})
        try:
            asyncio.run(_measure(port))
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(int(sys.argv[2]), sys.argv[3])
    else:
        main()
