"""``/status`` tells the truth at start and after a crash, with the suite in real processes.

Over gRPC (``HealthService/GetStatus``) and REST (``GET /status`` through the gateway).
The heartbeat interval is the default 5 s, so nothing here is listed in time by the
regular heartbeat alone.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request

import grpc
import pytest

from botmon.health.v1 import health_service_pb2, health_service_pb2_grpc
from tests.conftest import grpc_serving

VIEWER = "status-test-viewer-token"


def _env(suite_env: dict[str, str], **extra: str) -> dict[str, str]:
    return {**suite_env, "BOTMON_HEARTBEAT_INTERVAL": "5",
            "BOTMON_API_TOKENS": f"{VIEWER}:viewer", **extra}


def _by_grpc(env: dict[str, str]) -> list[dict]:
    with grpc.insecure_channel(env["BOTMON_HEALTH_ADDR"]) as channel:
        reply = health_service_pb2_grpc.HealthServiceStub(channel).GetStatus(
            health_service_pb2.GetStatusRequest(), timeout=2,
            metadata=(("authorization", f"Bearer {VIEWER}"),))
    return [{"name": s.name, "status": s.status, "pid": s.pid, "instance_id": s.instance_id}
            for s in reply.services]


def _by_rest(env: dict[str, str]) -> list[dict]:
    request = urllib.request.Request(
        f"http://{env['BOTMON_HTTP_ADDR']}/api/v1/monitoring/status",
        headers={"Authorization": f"Bearer {VIEWER}"})
    with urllib.request.urlopen(request, timeout=2) as response:
        return json.loads(response.read())["services"]


def _states(services: list[dict], names: tuple[str, ...]) -> dict[str, list[str]]:
    return {name: [s["status"] for s in services if s["name"] == name] for name in names}


def _ready_pids(run, names: tuple[str, ...], start: int = 0) -> dict[str, int]:
    return {name: int(run.wait_line(rf"^botmon: {name} ready on \S+ \(pid (\d+)\)",
                                    timeout=120, start=start).group(1)) for name in names}


def _listed(run, env: dict[str, str], expected: dict[str, list[str]],
            since: float) -> dict[str, float]:
    """Seconds after ``since`` at which gRPC and REST each first listed ``expected``."""
    seen: dict[str, float] = {}

    def lists(how) -> bool:
        try:
            return _states(how(env), tuple(expected)) == expected
        except (grpc.RpcError, OSError):
            return False

    def both() -> bool:
        # Both surfaces in every round, so that one's wait does not delay the other's.
        for how in (_by_grpc, _by_rest):
            if how.__name__ not in seen and lists(how):
                seen[how.__name__] = time.monotonic() - since
        return len(seen) == 2

    run.wait_for(both, f"{expected} over gRPC and REST", timeout=30)
    return seen


def _up_health(botmon, env: dict[str, str]) -> None:
    """``botmon up health``, once it serves."""
    botmon("up", "health", env=env).wait_for(lambda: grpc_serving(env["BOTMON_HEALTH_ADDR"]),
                                             "health to serve", timeout=120)


EARLY = ("logs", "metrics", "gateway")


@pytest.mark.parametrize("health_last", [True, False], ids=["health-last", "health-first"])
def test_listed_at_once_in_either_start_order_and_a_killed_child_is_stopped_at_once(
        botmon, suite_env, health_last):
    env = _env(suite_env)
    if health_last:
        suite = botmon("up", "--backoff", "0.2", *EARLY, env=env)
        pids = _ready_pids(suite, EARLY)
        # Long enough for the first heartbeats' retries to have backed off to whole seconds.
        time.sleep(4)
        _up_health(botmon, env)
    else:
        _up_health(botmon, env)
        suite = botmon("up", "--backoff", "0.2", *EARLY, env=env)
        pids = _ready_pids(suite, EARLY)
    # From here every started component is up and the health service reachable.
    reachable = time.monotonic()
    listed = _listed(suite, env, {name: ["running"] for name in (*EARLY, "health")}, reachable)
    assert max(listed.values()) <= 1.0, f"listed {listed} s after health was reachable"
    # alerts was never started: it is starting, not stopped.
    for how in (_by_grpc, _by_rest):
        assert _states(how(env), ("alerts",)) == {"alerts": ["starting"]}

    # kill -9 of a child: its instance is stopped at once, and its replacement runs.
    dead = next(s for s in _by_grpc(env) if s["name"] == "logs")
    assert dead["pid"] == pids["logs"]
    offset = len(suite.stdout)
    os.kill(pids["logs"], signal.SIGKILL)
    killed = time.monotonic()

    def dead_is_stopped(how) -> bool:
        return any(s["instance_id"] == dead["instance_id"] and s["status"] == "stopped"
                   for s in how(env))

    suite.wait_for(lambda: dead_is_stopped(_by_grpc), "the killed instance stopped",
                   timeout=30)
    stopped = time.monotonic() - killed
    assert stopped <= 1.0, f"stopped {stopped:.2f}s after kill -9"
    assert dead_is_stopped(_by_rest)
    new_pid = _ready_pids(suite, ("logs",), start=offset)["logs"]
    for how in (_by_grpc, _by_rest):
        replacement = suite.wait_for(
            lambda how=how: [s for s in how(env) if s["name"] == "logs"
                             and s["status"] == "running"], "the replacement running",
            timeout=30)
        assert [s["pid"] for s in replacement] == [new_pid]
        # The dead instance stays listed, as stopped, beside its replacement.
        assert dead_is_stopped(how)


def test_a_lapsed_heartbeat_without_a_supervisor_is_stopped_after_the_ttl(botmon, suite_env):
    # Interval 1 s: the TTL is its floor of 3 s.
    env = _env(suite_env, BOTMON_HEARTBEAT_INTERVAL="1")
    health = botmon("serve", "health", env=env)
    botmon("serve", "gateway", env=env)
    metrics = botmon("serve", "metrics", env=env)
    _listed(metrics, env, {"metrics": ["running"]}, time.monotonic())
    metrics.proc.send_signal(signal.SIGKILL)
    metrics.proc.wait(10)
    killed = time.monotonic()
    # No supervisor reports it: it is listed as running until its TTL lapses ...
    for how in (_by_grpc, _by_rest):
        assert _states(how(env), ("metrics",)) == {"metrics": ["running"]}, how.__name__
    lapsed = _listed(health, env, {"metrics": ["stopped"]}, killed)
    # ... and then as stopped.
    assert min(lapsed.values()) >= 2.0, f"stopped {lapsed} s after kill -9, before its 3 s TTL"
