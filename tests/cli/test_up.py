"""``botmon up`` end to end: every component in its own process, restarts, clean stop."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import psutil

from botmon import __version__
from botmon.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from tests.conftest import grpc_serving

COMPONENTS = ("health", "metrics", "alerts", "logs", "export", "gateway")


def _list_logs(address: str, token: str | None) -> grpc.StatusCode:
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    with grpc.insecure_channel(address) as channel:
        try:
            logs_service_pb2_grpc.LogsServiceStub(channel).ListLogs(
                logs_service_pb2.ListLogsRequest(), timeout=5, metadata=metadata)
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


def _get(url: str, token: str | None = None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                    timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _gone(pids: list[int]) -> bool:
    return not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
                   for pid in pids)


def test_up_runs_restarts_and_stops_the_whole_suite(botmon, suite_env):
    run = botmon("up", "--grace", "8", "--backoff", "0.2", env=suite_env)
    run.wait_line(r"^botmon: all 6 components ready", timeout=90)
    pids = {}
    for name in COMPONENTS:
        match = run.wait_line(rf"^botmon: {name} ready on (\S+) \(pid (\d+)\)", timeout=1)
        assert match.group(1) == suite_env[
            "BOTMON_HTTP_ADDR" if name == "gateway" else f"BOTMON_{name.upper()}_ADDR"]
        pids[name] = int(match.group(2))
    children = {p.pid for p in psutil.Process(run.proc.pid).children()}
    assert children == set(pids.values()), run.output()

    # The health endpoint needs no token and answers in the documented shape.
    base = f"http://{suite_env['BOTMON_HTTP_ADDR']}/api/v1/monitoring"
    # Defaults: SQLite and storage probed, cache and LLM not configured, so not unhealthy.
    status, body = _get(f"{base}/health")
    assert status == 200, body
    assert body["status"] in ("healthy", "degraded")

    # First start without credentials: the gateway created an admin token, mode 0600,
    # and its stdout (the one-time print) reached ours.
    token_file = Path(suite_env["BOTMON_DATA_DIR"]) / "admin-token"
    assert token_file.exists(), run.output()
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    assert token and token in run.stdout
    # Likewise the alerts service made the key that encrypts rule secrets at rest, and said
    # where it is (never what it is).
    key_file = Path(suite_env["BOTMON_DATA_DIR"]) / "secret-key"
    run.wait_for(lambda: str(key_file) in run.stdout, "the secret key's path printed")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().strip() not in run.stdout
    # Both tokens it made are audited: where each is kept, never what it is.
    data = Path(suite_env["BOTMON_DATA_DIR"])

    def bootstrap_audit() -> list[dict] | None:
        logs = _get(f"{base}/logs?service=botmon.audit&order=asc", token)[1]["logs"]
        return logs if len(logs) >= 2 else None
    entries = run.wait_for(bootstrap_audit, "the token bootstrap's audit entries", timeout=30)
    assert sorted((e["metadata"]["action"], e["metadata"]["resource"],
                   e["metadata"]["changes"]["file"]) for e in entries) == [
        ("token.bootstrapped", "tokens/admin", str(token_file.resolve())),
        ("token.bootstrapped", "tokens/internal", str((data / "internal-token").resolve()))]
    for entry in entries:
        assert (entry["metadata"]["subject"], entry["metadata"]["role"]) == ("botmon", "admin")
        assert entry["metadata"]["request_id"] and entry["timestamp"].endswith("Z")
    text = json.dumps(entries)
    assert token not in text and (data / "internal-token").read_text().strip() not in text
    assert not list((data / "audit-outbox").iterdir()), "stored records stay in the outbox"
    status, body = _get(f"{base}/health/detailed", token)
    assert status == 200, body
    assert body["components"]["database"]["status"] == "healthy"
    assert body["components"]["cache"]["status"] == "not_configured"
    assert set(body["components"]) >= {"database", "cache", "storage", "llm"}

    # The gRPC ports refuse a caller without a token and answer the printed admin token
    # (the grpcurl of the README, as Python).
    assert _list_logs(suite_env["BOTMON_LOGS_ADDR"], None) == grpc.StatusCode.UNAUTHENTICATED
    assert _list_logs(suite_env["BOTMON_LOGS_ADDR"], token) == grpc.StatusCode.OK
    # Every child heartbeats to health with the internal credential botmon up made.
    run.wait_for(lambda: {s["name"] for s in _get(f"{base}/status", token)[1]["services"]}
                 >= set(COMPONENTS) - {"health"}, "every component in /status", timeout=30)

    # A child killed outright is restarted and serves again.
    offset = len(run.stdout)
    os.kill(pids["logs"], signal.SIGKILL)
    run.wait_line(r"^botmon: logs was killed by SIGKILL", timeout=10, start=offset)
    match = run.wait_line(r"^botmon: logs ready on \S+ \(pid (\d+)\)", timeout=30, start=offset)
    new_pid = int(match.group(1))
    assert new_pid != pids["logs"]
    assert grpc_serving(suite_env["BOTMON_LOGS_ADDR"])
    pids["logs"] = new_pid

    # SIGTERM stops every child within the grace period and leaves none behind.
    started, offset = time.monotonic(), len(run.stdout)
    run.proc.send_signal(signal.SIGTERM)
    assert run.proc.wait(20) == 0, run.output()
    assert time.monotonic() - started < 15
    assert "botmon: stopped (exit code 0)" in run.stdout
    assert "SIGKILL" not in run.stdout[offset:], "a component did not stop on SIGTERM"
    run.wait_for(lambda: _gone(list(pids.values())), "children to exit", timeout=5,
                 running=False)


def test_children_die_with_a_killed_supervisor(botmon, suite_env):
    run = botmon("up", "health", env=suite_env)
    match = run.wait_line(r"^botmon: health ready on \S+ \(pid (\d+)\)", timeout=60)
    child = int(match.group(1))
    run.proc.kill()
    run.proc.wait(5)
    run.wait_for(lambda: _gone([child]), "the orphaned child to exit", timeout=10,
                 running=False)


def test_bad_setting_exits_2_with_one_line_naming_it(botmon, suite_env):
    for args in (("up",), ("serve", "logs"), ("serve", "gateway"), ("config",)):
        run = botmon(*args, env={**suite_env, "BOTMON_ALERT_EVAL_INTERVAL": "-1"})
        assert run.proc.wait(30) == 2, run.output()
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and "BOTMON_ALERT_EVAL_INTERVAL" in lines[0], (args, run.output())
        assert run.stdout == ""


def test_up_refuses_a_busy_or_unprobeable_address(botmon, suite_env):
    taken = suite_env["BOTMON_LOGS_ADDR"]
    host, port = taken.rsplit(":", 1)
    with socket.create_server((host, int(port))):
        run = botmon("up", env=suite_env)
        assert run.proc.wait(30) == 2, run.output()
    assert run.stderr.strip().startswith("botmon: BOTMON_LOGS_ADDR: cannot listen on")

    run = botmon("up", env={**suite_env, "BOTMON_HTTP_ADDR": "127.0.0.1:0"})
    assert run.proc.wait(30) == 2, run.output()
    assert "BOTMON_HTTP_ADDR" in run.stderr


def test_version_and_help(botmon, suite_env):
    run = botmon("version", env=suite_env)
    assert run.proc.wait(30) == 0
    assert run.stdout.strip() == f"botmon {__version__}"
    run = botmon("--help", env=suite_env)
    assert run.proc.wait(30) == 0
    for command in ("up", "serve", "healthcheck", "config", "version"):
        assert command in run.stdout
