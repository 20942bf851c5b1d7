"""The suite as ``make run`` boots it, loaded with wrk, against baselines started in the same run.

``botmon up`` with default settings (``info`` logging, the real services, SQLite
in a scratch data directory; only the listen addresses moved to free ports), and
a bare Sanic app in its own process whose handler returns fixed JSON. wrk loads
each at 50 connections in interleaved rounds (bare, suite, bare, suite, …); the
figure is the median of the rounds' req/s, the ratio suite/bare with its target.

Then the same with ``BOTMON_GATEWAY_WORKERS=2``: the scaling from one gateway worker
to two. ``python -m benchmarks.bench_defaults bare <port>`` runs the bare app alone.
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

from benchmarks.processes import Processes, free_port, wait_port

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]
SECONDS = int(os.environ.get("BOTMON_BENCH_SECONDS", "5"))
ROUNDS = int(os.environ.get("BOTMON_BENCH_ROUNDS", "3"))
CONNECTIONS = 50
HEALTH = "/api/v1/monitoring/health"


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


_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")


def _wrk(url: str) -> float:
    out = subprocess.run(["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{SECONDS}s", url],
                         capture_output=True, text=True, timeout=SECONDS + 60).stdout
    match = _RATE.search(out)
    if not match or "Non-2xx" in out:
        print(f"  wrk: {out.strip()[-300:]}", flush=True)
    return float(match.group(1)) if match else 0.0


def _target(name: str, value: float, baseline: float, target: float) -> None:
    ratio = value / baseline if baseline else 0.0
    print(f"{name}: {value:.0f} req/s (baseline: {baseline:.0f}, ratio: {ratio:.2f}, "
          f"target: >= {target})", flush=True)


def _suite(procs: Processes, workdir: Path, workers: int) -> int:
    """``botmon up`` at defaults with ``workers`` gateway workers; returns its HTTP port."""
    http_port = free_port()
    env = {"BOTMON_DATA_DIR": str(workdir / "data"),
           "BOTMON_HTTP_ADDR": f"127.0.0.1:{http_port}",
           **{f"BOTMON_{s}_ADDR": f"127.0.0.1:{free_port()}"
              for s in ("HEALTH", "METRICS", "ALERTS", "LOGS")}}
    if workers > 1:
        env["BOTMON_GATEWAY_WORKERS"] = str(workers)
    procs.start(f"suite{workers}", [sys.executable, "-m", "botmon.cli", "up"],
                {**os.environ, **env})
    wait_port(http_port, timeout=60)
    time.sleep(3)  # the first health round
    return http_port


def main() -> None:
    if shutil.which("wrk") is None:
        print("bench_defaults: skipped (wrk is not installed: apt-get install wrk)", flush=True)
        return
    with tempfile.TemporaryDirectory(prefix="botmon-bench-defaults-") as tmp, \
            Processes(Path(tmp)) as bare_procs:
        bare_port = free_port()
        bare_procs.start("bare", [sys.executable, "-m", "benchmarks.bench_defaults", "bare",
                                  str(bare_port)])
        wait_port(bare_port)
        medians = {}
        for workers in (1, 2):
            with Processes(Path(tmp)) as procs:
                http_port = _suite(procs, Path(tmp), workers)
                suite, baseline = [], []
                for _ in range(ROUNDS):
                    baseline.append(_wrk(f"http://127.0.0.1:{bare_port}{HEALTH}"))
                    suite.append(_wrk(f"http://127.0.0.1:{http_port}{HEALTH}"))
            medians[workers] = statistics.median(suite)
            if workers == 1:
                _target("defaults_health_rps", medians[1], statistics.median(baseline), 0.5)
        print(f"defaults_health_rps_2_workers: {medians[2]:.0f} req/s "
              f"({medians[2] / medians[1]:.2f}x 1 worker on this {os.cpu_count()}-core machine)",
              flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["bare"]:
        bare(int(sys.argv[2]))
    else:
        main()
