"""Rate limiter checks/s: Redis sliding window vs a bare Redis INCR, and in process.

Uses ``BOTMON_REDIS_URL`` when set, otherwise starts its own ``redis-server`` on a
free port for the run. Every figure's baseline is a bare ``INCR`` round trip through
an identically configured ``redis.asyncio`` client at the same concurrency (``_c16``:
16 concurrent callers, ``_c1``: one), measured in alternating slices of the same run.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import uuid

import redis.asyncio as aioredis

from benchmarks.processes import free_port
from botmon.runtime.config import Rate
from gateway.ratelimit import (
    CONNECT_TIMEOUT,
    MAX_CONNECTIONS,
    POOL_TIMEOUT,
    READ_TIMEOUT,
    MemoryLimiter,
    RedisLimiter,
)

SLICE_SECONDS = 0.6
ROUNDS = 4
CONCURRENCY = MAX_CONNECTIONS
USERS = 1000
RATES = {"ingest": Rate(1200, 60), "hot": Rate(60, 60), "default": Rate(120, 60)}


class Phase:
    """Throughput and latency of one operation, accumulated over time slices."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.latencies: list[float] = []

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile_ms(self, p: int) -> float:
        return statistics.quantiles(self.latencies, n=100)[p - 1] * 1e3


async def run_slice(phase: Phase, operation, concurrency: int, seconds: float) -> None:
    await asyncio.gather(*(operation(i) for i in range(concurrency)))  # warm the pool
    deadline = time.perf_counter() + seconds

    async def worker(worker_id: int) -> None:
        i = worker_id
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            await operation(i)
            phase.latencies.append(time.perf_counter() - start)
            i += concurrency

    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    phase.seconds += time.perf_counter() - start


async def compare(baseline, subject, concurrency: int) -> tuple[Phase, Phase]:
    """Alternate short slices of both so load from elsewhere hits them alike."""
    base, measured = Phase(), Phase()
    for _ in range(ROUNDS):
        await run_slice(base, baseline, concurrency, SLICE_SECONDS)
        await run_slice(measured, subject, concurrency, SLICE_SECONDS)
    return base, measured


def line(name: str, value: float, unit: str, baseline: float) -> None:
    print(f"{name}: {value:.2f} {unit} (baseline: {baseline:.2f}, ratio: {value / baseline:.2f})")


async def run(url: str) -> None:
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=POOL_TIMEOUT,
        socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=READ_TIMEOUT,
        lib_name=None, lib_version=None)
    bare = aioredis.Redis.from_pool(pool)
    limiter = RedisLimiter.from_url(url, RATES)
    run_id = uuid.uuid4().hex[:8]
    counter = f"bench:incr:{run_id}"

    def incr(i):
        return bare.incr(counter)

    try:
        incr16, allowed = await compare(
            incr, lambda i: limiter.check("ingest", f"{run_id}-{i % USERS}"), CONCURRENCY)
        incr16b, refused = await compare(incr, lambda i: limiter.check("hot", run_id),
                                         CONCURRENCY)
        incr1, single = await compare(
            incr, lambda i: limiter.check("ingest", f"{run_id}-1-{i % USERS}"), 1)
        assert limiter.counters["errors"] == 0, f"Redis errors during the run: {limiter.counters}"
        await bare.delete(counter)
    finally:
        await limiter.close()
        await bare.aclose()

    memory = MemoryLimiter(RATES)
    in_process = Phase()
    await run_slice(in_process, lambda i: memory.check("ingest", f"{run_id}-{i % USERS}"),
                    1, SLICE_SECONDS * 2)

    line(f"ratelimit_redis_checks_per_second_c{CONCURRENCY}", allowed.rate, "checks/s",
         incr16.rate)
    line(f"ratelimit_redis_check_p50_c{CONCURRENCY}", allowed.percentile_ms(50), "ms",
         incr16.percentile_ms(50))
    line(f"ratelimit_redis_check_p99_c{CONCURRENCY}", allowed.percentile_ms(99), "ms",
         incr16.percentile_ms(99))
    line(f"ratelimit_redis_refused_checks_per_second_c{CONCURRENCY}", refused.rate, "checks/s",
         incr16b.rate)
    line("ratelimit_redis_checks_per_second_c1", single.rate, "checks/s", incr1.rate)
    line("ratelimit_redis_check_p50_c1", single.percentile_ms(50), "ms", incr1.percentile_ms(50))
    line("ratelimit_memory_checks_per_second", in_process.rate, "checks/s", incr1.rate)


def start_redis() -> tuple[str, subprocess.Popen, str]:
    exe = shutil.which("redis-server")
    if not exe:
        raise SystemExit("bench_ratelimit: set BOTMON_REDIS_URL or install redis-server")
    port, workdir = free_port(), tempfile.mkdtemp(prefix="botmon-bench-redis-")
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", workdir],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return f"redis://127.0.0.1:{port}/0", proc, workdir
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("bench_ratelimit: redis-server did not start")


def main() -> None:
    url = os.environ.get("BOTMON_REDIS_URL")
    if url:
        asyncio.run(run(url))
        return
    url, proc, workdir = start_redis()
    try:
        asyncio.run(run(url))
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
