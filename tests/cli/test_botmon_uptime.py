"""With no platform registered, ``uptime_seconds`` is botmon's own uptime, the suite in real
processes: the age of its longest-running live component, not of the metrics service.

Components run as ``botmon serve`` processes; figures are read over REST
(``GET /metrics/application`` through the gateway) and gRPC (``GetApplicationMetrics``).
"""

from __future__ import annotations

import json
import time
import urllib.request

import grpc
import psutil

from botmon.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc

VIEWER = "uptime-test-viewer-token"
#: Quick re-reads of the registrations and of the figures.
UPTIME_REFRESH, SNAPSHOT_TTL, MIN_REFRESH = 0.2, 0.5, 0.1
#: Whole seconds, as of a refresh of the figures at most the snapshot's TTL old.
LAG = 1 + SNAPSHOT_TTL
#: A read of the registrations and the refresh of the figures it causes, three times over.
SETTLE = 3 * (UPTIME_REFRESH + MIN_REFRESH + SNAPSHOT_TTL)
#: Seconds between the starts of health and of metrics, far more than LAG.
GAP = 6


def _age(pid: int) -> float:
    return time.time() - psutil.Process(pid).create_time()


def _rest(env: dict[str, str], path: str) -> dict:
    request = urllib.request.Request(f"http://{env['BOTMON_HTTP_ADDR']}/api/v1/monitoring{path}",
                                     headers={"Authorization": f"Bearer {VIEWER}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def _figures(env: dict[str, str]) -> list[tuple[int, str]]:
    """(uptime_seconds, uptime_source) over gRPC, then over REST."""
    with grpc.insecure_channel(env["BOTMON_METRICS_ADDR"]) as channel:
        reply = metrics_service_pb2_grpc.MetricsServiceStub(channel).GetApplicationMetrics(
            metrics_service_pb2.GetApplicationMetricsRequest(), timeout=5,
            metadata=(("authorization", f"Bearer {VIEWER}"),))
    rest = _rest(env, "/metrics/application")["application"]
    return [(reply.application.uptime_seconds, reply.application.uptime_source),
            (rest["uptime_seconds"], rest["uptime_source"])]


def test_botmon_uptime_counts_from_its_longest_running_live_component(botmon, suite_env):
    env = {**suite_env, "BOTMON_API_TOKENS": f"{VIEWER}:viewer",
           "BOTMON_METRICS_UPTIME_REFRESH": str(UPTIME_REFRESH),
           "BOTMON_METRICS_SNAPSHOT_TTL": str(SNAPSHOT_TTL),
           "BOTMON_METRICS_MIN_REFRESH": str(MIN_REFRESH)}
    # Health first, GAP seconds before the others: it is botmon's longest-running component.
    health = botmon("serve", "health", env=env)
    time.sleep(GAP)
    metrics = botmon("serve", "metrics", env=env)
    botmon("serve", "gateway", env=env)
    pids = {"health": health.proc.pid, "metrics": metrics.proc.pid}

    def running() -> bool:
        listed = {(s["name"], s["pid"]) for s in _rest(env, "/status")["services"]
                  if s["status"] == "running"}
        return listed >= set(pids.items())

    metrics.wait_for(running, "health and metrics running in /status", timeout=120)

    def wrong() -> str:
        """How the figures differ from botmon's uptime counted from health's start;
        empty when they do not."""
        low = _age(pids["health"]) - LAG
        read = _figures(env)
        high = _age(pids["health"])
        if not all(s == "botmon" and low <= u <= high for u, s in read):
            return f"expected botmon uptime in [{low:.1f}, {high:.1f}] s, got {read}"
        if any(abs(u - _age(pids["metrics"])) <= 2 for u, _ in read):
            return f"{read} is the metrics process's own uptime"
        return ""

    # Health's uptime, not the metrics process's own, once metrics has read the
    # registrations; and in every read for SETTLE seconds after.
    metrics.wait_for(lambda: not wrong(), "botmon's uptime from health's start", timeout=30)
    end = time.monotonic() + SETTLE
    while time.monotonic() < end:
        assert not (problem := wrong()), problem
        time.sleep(0.1)
