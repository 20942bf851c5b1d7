"""Issue 3's WebSocket fan-out: 500 subscribers of ``/ws/metrics?interval=1``, measured in one run.

The suite runs as real processes (``python -m services.health``, ``python -m
services.metrics``, ``python -m services.logs`` — the metrics service reads its
error figures from it, in the background, off the tick path — and ``python -m
gateway``; alerts is not needed), set up by environment only, with the rate
limits raised so 500 sockets from one address are admitted. A load process of its
own connects the subscribers, waits until all are connected, then measures for
``SECONDS``:

- the gateway's CPU use (psutil CPU-time delta over the window, % of one core);
- metric_update messages delivered per second, in all and per subscriber;
- delay from a message's ``timestamp`` (the metrics service's host sample, taken on
  this machine, so one clock) to its receipt. Ticks follow samples (the collector
  announces each one and every subscriber due is sent it at once), so this is the
  whole delivery delay: sampling, fan-out, gRPC, gateway and WebSocket. The issue's
  100 ms p99 target is checked against it. (The load client's "tick lag", receipt
  against connection time + k x interval, assumes each stream keeps a schedule of
  its own; ticks now keep the sampler's, so it is not reported.)

Baseline, same run and same processes: one subscriber.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.cluster import API, Cluster
from benchmarks.cpu import CpuReading, percent_of_core, read_cpu
from benchmarks.load import run_load
from benchmarks.processes import Processes, figure
from services.metrics.stream import STREAM_METRICS

__all__ = ["main"]

CLIENTS = int(os.environ.get("BOTMON_BENCH_WS_CLIENTS", "500"))
SECONDS = float(os.environ.get("BOTMON_BENCH_WS_SECONDS", "20"))
BASELINE_SECONDS = 8.0
INTERVAL = 1.0
TARGET_P99_MS = 100.0
HUGE = "100000000/minute"


def _measure(procs: Processes, cluster: Cluster, name: str, clients: int,
             seconds: float) -> dict[str, Any]:
    """One load run of ``clients`` subscribers, with the CPU use of every process in it."""
    servers = {"gateway": cluster.pids("gateway"), "metrics": cluster.pids("metrics")}
    readings: dict[str, CpuReading] = {}
    load_pid: list[int] = []

    def on_mark(kind: str, pid: int) -> None:
        load_pid[:] = [pid]
        readings[kind] = read_cpu([pid, *(p for pids in servers.values() for p in pids)])

    spec = {"seconds": seconds, "warmup": 1.5,
            "ws": {"urls": [cluster.ws_url(0, f"{API}/ws/metrics?interval={INTERVAL:g}")],
                   "clients": clients, "token": cluster.tokens["viewer"],
                   "per_tick": len(STREAM_METRICS), "interval": INTERVAL}}
    result = run_load(procs, name, spec, on_mark=on_mark, timeout=seconds + 60)
    cpu = percent_of_core(readings["measuring"], readings["done"],
                          {**servers, "load": load_pid})
    return {**result["ws"], "cpu": cpu}


def _check(what: str, value: float) -> str:
    return f"# target {what} p99 <= {TARGET_P99_MS:g} ms: {value:.1f} ms " \
           f"{'met' if value <= TARGET_P99_MS else 'NOT met'}"


def main() -> None:
    """Run the fan-out and its one-subscriber baseline; print the figures with ratios."""
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="botmon-bench-ws-") as tmp, \
            Processes(Path(tmp)) as procs:
        cluster = Cluster(procs, Path(tmp), replicas={"health": 1, "metrics": 1, "logs": 1},
                          gateways=1,
                          env={"BOTMON_RATE_LIMITS": f"metrics={HUGE},default={HUGE}"})
        cluster.start()
        # GET /metrics answers once the metrics service has its first host sample.
        cluster.wait_ready(gateway_path="/metrics")
        one = _measure(procs, cluster, "load-1", 1, BASELINE_SECONDS)
        many = _measure(procs, cluster, f"load-{CLIENTS}", CLIENTS, SECONDS)
    figure(f"ws_{CLIENTS}_gateway_cpu", many["cpu"]["gateway"], "% of a core",
           one["cpu"]["gateway"])
    figure(f"ws_{CLIENTS}_messages_per_second", many["messages_per_second"], "msg/s",
           one["messages_per_second"])
    figure(f"ws_{CLIENTS}_messages_per_second_per_client",
           many["messages_per_second"] / max(1, many["connected"]), "msg/s",
           one["messages_per_second"] / max(1, one["connected"]))
    for q in ("p50", "p99"):
        key = f"sample_delay_{q}_ms"
        figure(f"ws_{CLIENTS}_sample_delay_{q}", many[key], "ms", one[key])
    print(_check("sample-to-client delay", many["sample_delay_p99_ms"]))
    print(f"# {many['connected']} of {CLIENTS} subscribers connected "
          f"(failures: {many['failed'] or 'none'}), {many['closed_in_window']} closed early, "
          f"{many['dropped']} updates reported dropped, other frames: "
          f"{many['other_frames'] or 'none'}; {many['messages']} messages in "
          f"{SECONDS:g}s (baseline: 1 subscriber for {BASELINE_SECONDS:g}s)")
    print(f"# CPU in % of one core with {CLIENTS} / 1 subscribers: metrics service "
          f"{many['cpu']['metrics']:.1f} / {one['cpu']['metrics']:.1f}, load client "
          f"{many['cpu']['load']:.1f} / {one['cpu']['load']:.1f}")
    print(f"# {os.cpu_count()} CPUs, 1-min load average {load_before:.1f} before and "
          f"{os.getloadavg()[0]:.1f} after (other work on the machine skews the figures)")


if __name__ == "__main__":
    main()
