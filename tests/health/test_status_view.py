"""The status list kept built in the background: current figures, lapses and process memory,
over gRPC (GetStatus) and REST (GET /status from the gateway's WatchStatus snapshot)."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time

import httpx
import psutil
import pytest
from google.protobuf import timestamp_pb2

from botmon.health.v1 import health_service_pb2 as pb
from botmon.health.v1 import health_service_pb2_grpc
from tests.conftest import suite_channel
from tests.harness import Suite
from tests.health.conftest import serve


def _start(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def beat(instance_id: str = "web-1", **fields) -> pb.HeartbeatRequest:
    return pb.HeartbeatRequest(name="web_server", instance_id=instance_id, **fields)


async def _rest(http: httpx.AsyncClient, suite: Suite) -> dict:
    r = await http.get(f"{suite.base}/status", headers=suite.headers())
    assert r.status_code == 200, r.text
    return r.json()


def _rfc3339(text: str) -> float:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromJsonString(text)
    return stamp.ToNanoseconds() / 1e9


async def test_uptime_and_timestamp_stay_current_without_heartbeats(make_settings):
    # No probe round and no heartbeat in the 2.5 s below: only the refresh moves the figures.
    settings = make_settings(probe_interval=30.0, heartbeat_interval=30.0)
    async with Suite(settings, components=("health",)) as suite, \
            suite_channel(f"127.0.0.1:{suite.ports['health']}", settings) as channel, \
            httpx.AsyncClient(timeout=10) as http:
        stub = health_service_pb2_grpc.HealthServiceStub(channel)
        await stub.Heartbeat(beat(start_time=_start(time.time() - 100), ttl_seconds=60),
                             timeout=5)
        firsts = []
        for _ in range(2):
            reply = await stub.GetStatus(pb.GetStatusRequest(), timeout=5)
            rest = await _rest(http, suite)
            now = time.time()
            assert reply.timestamp.ToNanoseconds() / 1e9 == pytest.approx(now, abs=1.5)
            assert _rfc3339(rest["timestamp"]) == pytest.approx(now, abs=1.5)
            grpc_uptime = next(s.uptime_seconds for s in reply.services if s.name == "web_server")
            rest_uptime = next(s["uptime_seconds"] for s in rest["services"]
                               if s["name"] == "web_server")
            firsts.append((grpc_uptime, rest_uptime))
            await asyncio.sleep(2.5)
    (grpc_before, rest_before), (grpc_after, rest_after) = firsts
    assert grpc_before == pytest.approx(100, abs=2)
    assert grpc_after - grpc_before >= 2
    assert rest_after - rest_before >= 2


async def test_registration_and_lapse_reach_rest_at_once(make_settings):
    async with Suite(make_settings(probe_interval=30.0), components=("health",)) as suite, \
            suite_channel(f"127.0.0.1:{suite.ports['health']}", suite.settings) as channel, \
            httpx.AsyncClient(timeout=10) as http:
        stub = health_service_pb2_grpc.HealthServiceStub(channel)
        await _rest(http, suite)

        async def web_server() -> list[str]:
            return [s["status"] for s in (await _rest(http, suite))["services"]
                    if s["name"] == "web_server"]

        sent = time.monotonic()
        await stub.Heartbeat(beat(ttl_seconds=1), timeout=5)
        while await web_server() != ["running"]:
            assert time.monotonic() - sent < 1.0, "the registration is not listed"
            await asyncio.sleep(0.02)
        # Lapsed 1 s after the heartbeat: listed as stopped with no request in between.
        while await web_server() != ["stopped"]:
            assert time.monotonic() - sent < 2.0, "the lapse is not listed"
            await asyncio.sleep(0.05)
        assert time.monotonic() - sent >= 1.0


async def test_memory_of_local_processes_is_reported(health_settings):
    me = psutil.Process()
    host = socket.gethostname()
    # A process started after the start registered for its pid is not that instance.
    late = await asyncio.create_subprocess_exec(sys.executable, "-c", "import time; time.sleep(30)")
    try:
        async with serve(health_settings()) as running:
            for instance_id, fields in {
                    "local": {"pid": os.getpid(), "host": host,
                              "start_time": _start(me.create_time())},
                    "elsewhere": {"pid": os.getpid(), "host": f"not-{host}"},
                    "reused-pid": {"pid": late.pid, "host": host,
                                   "start_time": _start(time.time() - 3600)},
                    "no-pid": {"host": host}}.items():
                await running.stub.Heartbeat(beat(instance_id, **fields), timeout=5)
            entries = await running.status()
    finally:
        late.kill()
        await late.wait()
    web = {e.instance_id: e for e in entries["web_server"]}
    assert web["local"].memory_used_mb == pytest.approx(me.memory_info().rss / 1e6, rel=0.25)
    for unknown in ("elsewhere", "reused-pid", "no-pid"):
        assert not web[unknown].HasField("memory_used_mb"), unknown
    # The health replica measures itself (this process, in the test).
    assert entries["health"][0].memory_used_mb > 0
    # Not running, so no process to measure.
    assert not entries["metrics"][0].HasField("memory_used_mb")


async def test_memory_is_reported_over_rest(make_settings):
    async with Suite(make_settings(probe_interval=30.0), components=("health",)) as suite, \
            httpx.AsyncClient(timeout=10) as http:
        started = time.monotonic()
        while True:
            services = {s["name"]: s for s in (await _rest(http, suite))["services"]}
            # Seen once under a full run's load: the gateway listed running, its figure not
            # yet read. The figure must come within the same bound as the listing.
            if all(services[name]["status"] == "running"
                   and services[name]["memory_used_mb"] is not None
                   for name in ("gateway", "health")) or time.monotonic() - started > 5:
                break
            await asyncio.sleep(0.05)
    rss = psutil.Process().memory_info().rss / 1e6
    # The in-process gateway and health service run in this process.
    for name in ("gateway", "health"):
        assert services[name]["status"] == "running"
        assert services[name]["memory_used_mb"] == pytest.approx(rss, rel=0.25), name
    assert services["metrics"]["memory_used_mb"] is None


async def test_watch_status_sends_each_change_and_at_least_every_second(health_settings):
    async with serve(health_settings()) as running:
        call = running.stub.WatchStatus(pb.WatchStatusRequest())
        first = await asyncio.wait_for(call.read(), 5)
        assert "web_server" not in {s.name for s in first.status.services}
        sent = time.monotonic()
        await running.stub.Heartbeat(beat(), timeout=5)
        # (A periodic list built before the heartbeat may come first.)
        while "web_server" not in {s.name for s in (await asyncio.wait_for(
                call.read(), 5)).status.services}:
            pass
        assert time.monotonic() - sent < 0.5
        # Nothing changes from here on: the list still comes, with its figures of the moment.
        stamps = []
        for _ in range(3):
            reply = await asyncio.wait_for(call.read(), 1.5)
            stamps.append(reply.status.timestamp.ToNanoseconds() / 1e9)
        call.cancel()
    assert stamps == sorted(stamps)
    assert stamps[-1] == pytest.approx(time.time(), abs=1.5)
