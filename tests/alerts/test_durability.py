"""State that survives restarts, crashes (kill -9) and leader failover between replicas."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from botmon.alerts.v1 import alerts_service_pb2 as pb
from botmon.alerts.v1 import alerts_service_pb2_grpc
from botmon.health.v1 import health_service_pb2
from botmon.runtime.channels import open_channel
from botmon.runtime.credentials import INTERNAL_SUBJECT
from tests.alerts.conftest import INTERVAL, Running, fast, serve
from tests.alerts.stand_ins import free_port
from tests.health.conftest import serve as serve_health
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
INTERNAL_TOKEN = "alerts-durability-internal-token"
CPU = dict(name="cpu_hot", metric="cpu.usage_percent", condition="greater_than", threshold=80,
           severity="critical")


def _log(path: Path):
    return open(path, "wb")  # noqa: SIM115 - the caller closes it


@contextlib.asynccontextmanager
async def replica(env: dict[str, str], tmp_path: Path):
    """``python -m services.alerts`` in its own process, with a stub to call it."""
    port = free_port()
    log = _log(tmp_path / f"alerts-{port}.log")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.alerts", cwd=ROOT, stdout=log, stderr=log,
        env={**os.environ, **env, "BOTMON_ALERTS_ADDR": f"127.0.0.1:{port}",
             "BOTMON_INTERNAL_TOKEN": INTERNAL_TOKEN})
    channel = open_channel(f"127.0.0.1:{port}", token=INTERNAL_TOKEN)
    try:
        await asyncio.wait_for(channel.channel_ready(), 30)
        yield proc, Running(None, channel, alerts_service_pb2_grpc.AlertsServiceStub(channel))
    finally:
        await channel.close()
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        log.close()


def _env(settings, **extra: str) -> dict[str, str]:
    env = {
        "BOTMON_DATA_DIR": str(settings.data_dir), "BOTMON_STORE_URL": settings.store_url,
        "BOTMON_METRICS_TARGET": settings.metrics_target,
        "BOTMON_HEALTH_TARGET": settings.health_target,
        "BOTMON_ALERT_EVAL_INTERVAL": str(INTERVAL), "BOTMON_GRPC_DEADLINE": "2",
        "BOTMON_HEARTBEAT_INTERVAL": "60", "BOTMON_LOG_LEVEL": "warning",
        "BOTMON_ALERT_DEFAULT_RULES": "false", "BOTMON_ALERT_DISPATCH_POLL": "0.1",
        "BOTMON_ALERT_RETRY_INITIAL": "0.05", "BOTMON_ALERT_RETRY_MAX": "0.2",
        "BOTMON_HTTP_ADDR": "127.0.0.1:8080", "BOTMON_WEBHOOK_ALLOW": "127.0.0.0/8",
    }
    if settings.redis_url:
        env["BOTMON_REDIS_URL"] = settings.redis_url
    if settings.internal_token:  # the in-process health service's credential, for heartbeats
        env["BOTMON_INTERNAL_TOKEN"] = settings.internal_token
    return {**env, **extra}


@pytest.fixture(params=["sqlite", "postgresql"])
def store_settings(request, alert_settings):
    """Settings on the embedded store or on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return alert_settings()
    return alert_settings(store_url=request.getfixturevalue("postgres_url"))


async def test_everything_survives_a_restart(store_settings, metrics, receiver):
    async with serve(store_settings) as svc:
        await svc.configure(**CPU, notify={"webhook": receiver.url("/hook")},
                            repeat_interval_seconds=3600)
        metrics.values["cpu.usage_percent"] = 91
        alert = await eventually(lambda: svc.alert_of("cpu_hot", "firing"))
        await eventually(lambda: receiver.at("/hook"))
        # The test's channel carries the internal credential: the suite's subject acts.
        await svc.stub.AcknowledgeAlert(pb.AcknowledgeAlertRequest(
            alert_id=alert.alert_id, notes="on it"), timeout=10)
        silence = (await svc.stub.CreateSilence(pb.CreateSilenceRequest(silence={
            "matchers": [{"name": "alertname", "value": "other"}],
            "ends_at": {"seconds": int(time.time()) + 3600}}), timeout=10)).silence
        history = await svc.history()

    async with serve(store_settings) as svc:
        rules = (await svc.stub.ListAlertRules(pb.ListAlertRulesRequest(), timeout=10)).rules
        assert [r.name for r in rules] == ["cpu_hot"]
        again = await svc.alert_of("cpu_hot")
        assert again.alert_id == alert.alert_id and again.state == "firing"
        assert (again.acknowledged_by, again.notes) == (INTERNAL_SUBJECT, "on it")
        silences = (await svc.stub.ListSilences(pb.ListSilencesRequest(), timeout=10)).silences
        assert [s.silence_id for s in silences] == [silence.silence_id]
        await asyncio.sleep(4 * INTERVAL)  # several cycles after the restart
        assert [h.id for h in (await svc.history())[:len(history)]] == [h.id for h in history]
        assert await svc.transitions("cpu_hot") == [("", "firing")]
        assert len(receiver.at("/hook")) == 1  # the restart notified no one again
        metrics.values["cpu.usage_percent"] = 10
        await eventually(lambda: svc.gone("cpu_hot"))
        resolved = await eventually(lambda: receiver.at("/hook")[1:])
        assert [r.json["status"] for r in resolved] == ["resolved"]


async def test_outbox_delivers_once_after_a_kill_between_firing_and_sending(
        alert_settings, metrics, receiver, tmp_path):
    settings = alert_settings()
    # The first process holds the firing notification back for 3 s; it dies before sending.
    env = _env(settings, BOTMON_ALERT_GROUP_WAIT="3")
    async with replica(env, tmp_path) as (proc, first):
        await first.configure(**CPU, notify={"webhook": receiver.url("/hook")})
        metrics.values["cpu.usage_percent"] = 91
        alert = await eventually(lambda: first.alert_of("cpu_hot", "firing"), within=15)
        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), 10)
    assert receiver.at("/hook") == []

    async with serve(settings) as svc:
        [request] = await eventually(lambda: receiver.at("/hook"), within=10)
        assert request.json["status"] == "firing"
        assert request.json["alerts"][0]["annotations"]["alert_id"] == alert.alert_id
        await asyncio.sleep(1.0)
        assert len(receiver.at("/hook")) == 1
        assert await svc.transitions("cpu_hot") == [("", "firing")]
        deliveries = [h.delivery for h in await svc.history(alert_id=alert.alert_id)
                      if h.kind == "delivery"]
        assert [(d.kind, d.attempt, d.success) for d in deliveries] == [("firing", 1, True)]
        assert await svc.server.engine.store.pending_notifications() == 0


@pytest.fixture(params=["postgresql", "redis"])
def replicated_settings(request, alert_settings):
    """Replicas coordinated by a PostgreSQL store's advisory lock, or by a Redis lease."""
    if request.param == "postgresql":
        return alert_settings(store_url=request.getfixturevalue("postgres_url"))
    return alert_settings(redis_url=request.getfixturevalue("redis_url"))


async def test_failover_between_replicas_notifies_once_per_transition(
        replicated_settings, metrics, receiver, tmp_path):
    async with asyncio.timeout(60):
        await _failover(replicated_settings, metrics, receiver, tmp_path)


async def _failover(settings, metrics, receiver, tmp_path) -> None:
    async with replica(_env(settings), tmp_path) as (proc, first):
        await first.configure(**CPU, notify={"webhook": receiver.url("/hook")})
        metrics.values["cpu.usage_percent"] = 91
        await eventually(lambda: receiver.at("/hook"), within=15)  # the subprocess leads
        async with serve(settings) as second:
            await asyncio.sleep(5 * INTERVAL)
            assert not second.server.engine.leading  # a follower while the leader lives
            proc.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            await asyncio.wait_for(proc.wait(), 10)
            await eventually(lambda: second.server.engine.leading, within=5, interval=0.01)
            takeover = time.monotonic() - killed
            assert takeover <= 2 * INTERVAL + 0.25, takeover  # two intervals, plus scheduling
            await asyncio.sleep(5 * INTERVAL)
            assert len(receiver.at("/hook")) == 1  # the new leader did not notify again
            metrics.values["cpu.usage_percent"] = 10
            await eventually(lambda: second.gone("cpu_hot"))
            await eventually(lambda: len(receiver.at("/hook")) == 2)
            await asyncio.sleep(5 * INTERVAL)
            assert [r.json["status"] for r in receiver.at("/hook")] == ["firing", "resolved"]
            assert await second.transitions("cpu_hot") == [
                ("", "firing"), ("firing", "resolved")]


async def test_two_live_replicas_elect_exactly_one_leader(alert_settings, metrics, receiver,
                                                          postgres_url):
    settings = alert_settings(store_url=postgres_url)
    async with serve(settings, fast()) as a, serve(settings, fast()) as b:
        await a.configure(**CPU, notify={"webhook": receiver.url("/hook")})
        await eventually(lambda: a.server.engine.leading or b.server.engine.leading)
        for _ in range(10):
            assert a.server.engine.leading != b.server.engine.leading
            await asyncio.sleep(INTERVAL / 2)
        metrics.values["cpu.usage_percent"] = 91
        await eventually(lambda: receiver.at("/hook"))
        leader, follower = (a, b) if a.server.engine.leading else (b, a)
        await leader.server.stop(0)  # a clean stop releases the lock at once
        await eventually(lambda: follower.server.engine.leading, within=2 * INTERVAL + 0.5)
        metrics.values["cpu.usage_percent"] = 10
        await eventually(lambda: len(receiver.at("/hook")) == 2)
        await asyncio.sleep(3 * INTERVAL)
        assert [r.json["status"] for r in receiver.at("/hook")] == ["firing", "resolved"]


async def _leaders(health, procs: dict[int, asyncio.subprocess.Process],
                   since: float) -> tuple[list[int], list[int]]:
    """(leading, following) live replicas, by what they said in heartbeats after ``since``."""
    reply = await health.stub.GetStatus(health_service_pb2.GetStatusRequest(), timeout=5)
    leading, following = [], []
    for entry in reply.services:
        proc = procs.get(entry.pid)
        if (entry.name != "alerts" or proc is None or proc.returncode is not None
                or entry.last_heartbeat_time.ToNanoseconds() / 1e9 <= since
                or "leader" not in entry.details):
            continue
        (leading if entry.details["leader"] else following).append(entry.pid)
    return leading, following


async def test_twenty_leader_kills_in_a_row_each_leave_a_new_leader_within_two_intervals(
        replicated_settings, tmp_path):
    interval, heartbeat = 0.5, 0.1
    procs: dict[int, asyncio.subprocess.Process] = {}  # the live replicas
    dead: list[asyncio.subprocess.Process] = []
    logs = []
    async with serve_health(replicated_settings) as health:
        env = {**os.environ, **_env(replicated_settings),
               "BOTMON_ALERT_EVAL_INTERVAL": str(interval),
               "BOTMON_HEARTBEAT_INTERVAL": str(heartbeat),
               "BOTMON_HEALTH_TARGET": f"127.0.0.1:{health.server.port}"}

        async def spawn() -> None:
            logs.append(_log(tmp_path / f"alerts-{len(logs)}.log"))
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "services.alerts", cwd=ROOT, stdout=logs[-1],
                stderr=logs[-1], env={**env, "BOTMON_ALERTS_ADDR": f"127.0.0.1:{free_port()}"})
            procs[proc.pid] = proc

        holder = _holder(replicated_settings)
        try:
            for _ in range(3):
                await spawn()
            takeovers = []
            for _ in range(20):
                # One leader, and a follower to take over from it.
                checked = time.time()
                leading, _following = await eventually(
                    lambda since=checked: _counted(_leaders(health, procs, since)), within=30)
                assert len(leading) == 1, leading
                before = await holder()
                assert before
                dead.append(procs.pop(leading[0]))
                dead[-1].kill()
                killed, killed_at = time.monotonic(), time.time()
                # Taken over: the lock or lease is held again, by another replica.
                await eventually(lambda old=before: _other(holder(), old), within=10,
                                 interval=0.005)
                takeovers.append(time.monotonic() - killed)
                await spawn()  # the next round's follower
                # ... and the replica that holds it says it leads.
                await eventually(
                    lambda since=killed_at: _leading(_leaders(health, procs, since)), within=10)
            # Two intervals, plus scheduling on a busy machine.
            assert max(takeovers) <= 2 * interval + 0.25, takeovers
        finally:
            for proc in [*procs.values(), *dead]:
                if proc.returncode is None:
                    proc.kill()
                await proc.wait()
            for log in logs:
                log.close()


def _holder(settings) -> Callable[[], Awaitable[object]]:
    """Who holds leadership, as the store that arbitrates it says (None when nobody)."""
    if settings.store_url.startswith("postgresql"):
        async def backend() -> object:
            conn = await asyncpg.connect(settings.store_url, timeout=5)
            try:
                # Advisory locks of this store's database only: pg_locks lists the whole
                # server's, and another database's holder would hide the handover.
                return await conn.fetchval(
                    "SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                    "WHERE l.locktype = 'advisory' AND l.granted "
                    "AND d.datname = current_database()", timeout=5)
            finally:
                await conn.close(timeout=5)
        return backend

    async def lease() -> object:
        client = aioredis.Redis.from_url(settings.redis_url, socket_timeout=5)
        try:
            keys = await client.keys("botmon:alerts:leader:*")
            return await client.get(keys[0]) if keys else None
        finally:
            await client.aclose()
    return lease


async def _other(holder: Awaitable[object], old: object) -> bool:
    return (await holder) not in (None, old)


async def _leading(leaders) -> list[int]:
    return (await leaders)[0]


async def _counted(leaders) -> tuple[list[int], list[int]] | None:
    """``leaders`` when it names a leader and at least one follower, else None."""
    leading, following = await leaders
    return (leading, following) if leading and following else None
