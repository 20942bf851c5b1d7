"""Heartbeat, Deregister and the status list, in memory and shared through Redis."""

from __future__ import annotations

import asyncio
import os
import time

import grpc
import pytest
import redis
from google.protobuf import struct_pb2, timestamp_pb2

from botmon.health.v1 import health_service_pb2 as pb
from botmon.health.v1 import health_service_pb2_grpc
from botmon.runtime.server import GrpcServer
from services.health.__main__ import create_server
from services.health.config import HealthSettings
from tests.conftest import suite_channel
from tests.harness import Suite
from tests.health.conftest import serve
from tests.waiting import eventually


def beat(name="web_server", instance_id="web-1", **fields) -> pb.HeartbeatRequest:
    return pb.HeartbeatRequest(name=name, instance_id=instance_id, **fields)


async def test_a_registered_service_is_listed(health_settings):
    started = timestamp_pb2.Timestamp()
    started.FromSeconds(int(time.time()) - 100)
    details = struct_pb2.Struct()
    details.update({"retention_days": 30})
    async with serve(health_settings()) as running:
        reply = await running.stub.Heartbeat(beat(
            port=8080, pid=1234, version="2.1", host="web-host", ttl_seconds=60,
            start_time=started, details=details), timeout=5)
        assert reply.expire_time.ToSeconds() == pytest.approx(time.time() + 60, abs=5)
        entry, = (await running.status())["web_server"]
    assert (entry.status, entry.port, entry.pid, entry.version, entry.host, entry.instance_id) \
        == ("running", 8080, 1234, "2.1", "web-host", "web-1")
    assert entry.uptime_seconds == pytest.approx(100, abs=5)
    assert entry.details["retention_days"] == 30
    assert entry.last_heartbeat_time.ToSeconds() == pytest.approx(time.time(), abs=5)


async def test_start_time_defaults_to_the_first_heartbeat(health_settings):
    async with serve(health_settings()) as running:
        await running.stub.Heartbeat(beat(), timeout=5)
        await asyncio.sleep(1.1)
        await running.stub.Heartbeat(beat(), timeout=5)
        entry, = (await running.status())["web_server"]
    assert entry.uptime_seconds >= 1


async def test_the_status_list_names_the_suite_and_the_components(health_settings, fake_llm,
                                                                  redis_url):
    settings = health_settings(probe_llm_url=fake_llm.url, probe_cache_url=redis_url)
    async with serve(settings) as running:
        for name in ("gateway", "logs"):
            await running.stub.Heartbeat(beat(name=name, instance_id=f"{name}-1"), timeout=5)
        response = await running.stub.GetStatus(pb.GetStatusRequest(), timeout=5)
        port = running.server.port
    names = [s.name for s in response.services]
    assert names == ["gateway", "health", "metrics", "alerts", "logs", "database", "cache",
                     "llm_server"]
    by_name = {s.name: s for s in response.services}
    assert by_name["health"].pid == os.getpid()
    assert by_name["health"].port == port
    assert by_name["health"].status == "running"
    assert by_name["health"].version
    assert by_name["metrics"].status == "starting"  # the suite's own, never registered
    assert by_name["database"].status == "running"
    assert by_name["database"].details["backend"] == "sqlite"
    assert by_name["cache"].port == int(redis_url.rsplit(":", 1)[1].split("/")[0])
    assert by_name["cache"].HasField("memory_used_mb")
    uptime = redis.Redis.from_url(redis_url).info("server")["uptime_in_seconds"]
    assert by_name["cache"].uptime_seconds == pytest.approx(uptime, abs=3)
    assert by_name["llm_server"].model == "local-model"
    assert by_name["llm_server"].port == int(fake_llm.url.rsplit(":", 1)[1])


async def test_unconfigured_components_are_listed_as_such(health_settings):
    async with serve(health_settings()) as running:
        entries = await running.status()
    assert entries["cache"][0].status == "not_configured"
    assert not entries["cache"][0].HasField("memory_used_mb")
    assert entries["llm_server"][0].status == "not_configured"


async def test_a_lapsed_heartbeat_shows_stopped_then_is_dropped(health_settings):
    retention = HealthSettings(stopped_retention=2)
    async with serve(health_settings(), retention) as running:
        await running.stub.Heartbeat(beat(ttl_seconds=1, status="degraded"), timeout=5)
        assert (await running.status())["web_server"][0].status == "degraded"
        await asyncio.sleep(1.2)
        stopped, = (await running.status())["web_server"]
        assert stopped.status == "stopped"
        assert stopped.uptime_seconds == 0
        await asyncio.sleep(1.0)
        assert "web_server" not in await running.status()


async def test_deregister_removes_the_entry(health_settings):
    async with serve(health_settings()) as running:
        await running.stub.Heartbeat(beat(), timeout=5)
        await running.stub.Heartbeat(beat(instance_id="web-2"), timeout=5)
        await running.stub.Deregister(pb.DeregisterRequest(name="web_server", instance_id="web-1"),
                                      timeout=5)
        assert [e.instance_id for e in (await running.status())["web_server"]] == ["web-2"]
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await running.stub.Deregister(
                pb.DeregisterRequest(name="web_server", instance_id="web-1"), timeout=5)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


async def test_redis_registry_is_shared_by_two_health_servers(health_settings, redis_url):
    retention = HealthSettings(stopped_retention=2)
    # Two settings, so the replicas have distinct instance ids as two processes would.
    async with serve(health_settings(redis_url=redis_url), retention) as one, \
            serve(health_settings(redis_url=redis_url), retention) as two:
        await one.stub.Heartbeat(beat(ttl_seconds=1, port=9000), timeout=5)
        entry, = (await two.status())["web_server"]
        assert (entry.status, entry.port) == ("running", 9000)
        # Each replica registers itself too, so both list both health replicas.
        for _ in range(50):
            if len((await two.status())["health"]) == 2:
                break
            await asyncio.sleep(0.05)
        assert {e.port for e in (await one.status())["health"]} == {one.server.port,
                                                                   two.server.port}
        assert (await one.status())["health"][0].details["registry"] == "redis"
        await asyncio.sleep(1.2)
        assert (await two.status())["web_server"][0].status == "stopped"
        await one.stub.Heartbeat(beat(ttl_seconds=30), timeout=5)
        assert (await two.status())["web_server"][0].status == "running"
        await two.stub.Deregister(pb.DeregisterRequest(name="web_server", instance_id="web-1"),
                                  timeout=5)
        assert "web_server" not in await one.status()


@pytest.mark.parametrize(("request_fields", "field", "message"), [
    ({"name": ""}, "name", "name is required"),
    ({"name": "   "}, "name", "name is required"),
    ({"name": "x" * 129}, "name", "at most 128"),
    ({"name": "database"}, "name", "reserved"),
    ({"instance_id": ""}, "instance_id", "instance_id is required"),
    ({"ttl_seconds": -1}, "ttl_seconds", "between 1 and 3600"),
    ({"ttl_seconds": 3601}, "ttl_seconds", "between 1 and 3600"),
    ({"status": "sleeping"}, "status", "running, degraded"),
    ({"port": 70000}, "port", "between 0 and 65535"),
    ({"pid": -5}, "pid", "negative"),
])
async def test_bad_heartbeats_are_invalid_arguments(health_settings, request_fields, field,
                                                    message):
    fields = {"name": "web_server", "instance_id": "web-1", **request_fields}
    async with serve(health_settings()) as running:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await running.stub.Heartbeat(pb.HeartbeatRequest(**fields), timeout=5)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in error.value.details()
    assert message in error.value.details()


async def test_deregister_requires_name_and_instance(health_settings):
    async with serve(health_settings()) as running:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await running.stub.Deregister(pb.DeregisterRequest(name="web_server"), timeout=5)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "instance_id is required" in error.value.details()


async def test_suite_services_register_themselves(health_settings):
    async with serve(health_settings(heartbeat_interval=0.1)) as running:
        settings = health_settings(health_target=f"127.0.0.1:{running.server.port}",
                                   heartbeat_interval=0.1)
        # The runtime's own heartbeat, as every suite service sends it.
        logs = GrpcServer("logs", settings, [], address="127.0.0.1:0")
        async with logs:
            for _ in range(50):
                entries = await running.status()
                if entries["logs"][0].status == "running":
                    break
                await asyncio.sleep(0.05)
            entry, = entries["logs"]
            assert (entry.status, entry.port, entry.pid) == ("running", logs.port, os.getpid())
        # A graceful stop deregisters: the suite entry is back to "stopped".
        entry, = (await running.status())["logs"]
        assert entry.status == "stopped"


async def test_a_gracefully_stopped_gateway_leaves_the_status_list_at_once(make_settings):
    suite = Suite(make_settings(probe_interval=30.0), components=())
    server = await create_server(suite.settings, address=f"127.0.0.1:{suite.ports['health']}",
                                 health_settings=HealthSettings())
    async with server, suite_channel(f"127.0.0.1:{server.port}", suite.settings) as channel:
        stub = health_service_pb2_grpc.HealthServiceStub(channel)

        async def gateway() -> list[tuple[str, str]]:
            reply = await stub.GetStatus(pb.GetStatusRequest(), timeout=5)
            return [(s.status, s.instance_id) for s in reply.services if s.name == "gateway"]

        assert await gateway() == [("starting", "")]
        async with suite:
            await eventually(lambda: _running(gateway()))
        # It deregistered on its way out instead of staying "running" until its TTL lapsed.
        assert await gateway() == [("stopped", "")]


async def _running(entries) -> bool:
    return [status for status, _ in await entries] == ["running"]


@pytest.mark.parametrize("registry", ["memory", "redis"])
async def test_an_instance_reported_dead_is_stopped_at_once_then_dropped(health_settings,
                                                                         registry, request):
    settings = (health_settings(redis_url=request.getfixturevalue("redis_url"))
                if registry == "redis" else health_settings())
    async with serve(settings, HealthSettings(stopped_retention=2)) as running:
        await running.stub.Heartbeat(beat(ttl_seconds=1, pid=4321), timeout=5)
        await running.stub.Heartbeat(beat(instance_id="web-2", ttl_seconds=30), timeout=5)
        await running.stub.Deregister(pb.DeregisterRequest(
            name="web_server", instance_id="web-1", retain_as_stopped=True), timeout=5)
        entries = {e.instance_id: e for e in (await running.status())["web_server"]}
        assert (entries["web-1"].status, entries["web-1"].pid) == ("stopped", 4321)
        assert entries["web-2"].status == "running"
        # Reporting it again changes nothing; an unknown instance is NOT_FOUND.
        await running.stub.Deregister(pb.DeregisterRequest(
            name="web_server", instance_id="web-1", retain_as_stopped=True), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await running.stub.Deregister(pb.DeregisterRequest(
                name="web_server", instance_id="web-9", retain_as_stopped=True), timeout=5)
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
        # Listed as stopped for the retention (2 TTLs of 1 s), then dropped.
        await asyncio.sleep(1.0)
        assert {e.instance_id: e.status for e in (await running.status())["web_server"]} == {
            "web-1": "stopped", "web-2": "running"}
        await eventually(lambda: _instances(running, {"web-2"}), within=5)
        # A heartbeat of an instance reported dead renews it.
        await running.stub.Heartbeat(beat(instance_id="web-2", ttl_seconds=30), timeout=5)
        await running.stub.Deregister(pb.DeregisterRequest(
            name="web_server", instance_id="web-2", retain_as_stopped=True), timeout=5)
        await running.stub.Heartbeat(beat(instance_id="web-2", ttl_seconds=30), timeout=5)
        assert [e.status for e in (await running.status())["web_server"]] == ["running"]


async def _instances(running, ids: set[str]) -> bool:
    return {e.instance_id for e in (await running.status()).get("web_server", [])} == ids
