"""Redis going away mid-run: fail open (or closed), say so once, recover without a restart."""

from __future__ import annotations

import asyncio
import logging
import shutil

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.ratelimit import create_limiter
from tests.conftest import free_port
from tests.waiting import eventually

RETRY = 0.2


class RedisProcess:
    """A ``redis-server`` of this test's own, on a fixed port so it can come back."""

    def __init__(self, workdir) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        client = aioredis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        try:
            for _ in range(100):
                try:
                    await client.ping()
                    return
                except (OSError, RedisError):
                    await asyncio.sleep(0.05)
            raise RuntimeError("redis-server did not start")
        finally:
            await client.aclose()

    async def kill(self) -> None:
        if self.proc and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


@pytest.fixture
async def own_redis(tmp_path):
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    server = RedisProcess(tmp_path)
    await server.start()
    yield server
    await server.kill()


def messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "gateway.ratelimit"]


async def test_redis_outage_fails_open_then_recovers(own_redis, make_settings, caplog):
    settings = make_settings({"BOTMON_RATE_LIMITS": "alerts=3/minute"}, redis_url=own_redis.url)
    limiter = create_limiter(settings, retry_interval=RETRY)
    caplog.set_level(logging.INFO, logger="gateway.ratelimit")
    try:
        assert (await limiter.check("alerts", "alice")).remaining == 2

        await own_redis.kill()
        during = [await limiter.check("alerts", "alice") for _ in range(5)]
        assert all(d.allowed and d.degraded for d in during)
        assert during[0].headers()["X-RateLimit-Remaining"] == "3"
        assert limiter.fail_open_active is True
        assert limiter.counters == {"allowed": 1, "limited": 0, "errors": 5}
        logged = messages(caplog)
        assert len(logged) == 1
        assert logged[0].startswith("rate limiter cannot use Redis")
        assert "failing open" in logged[0]

        await own_redis.start()
        await asyncio.sleep(RETRY)
        # A fresh server: the budget restarts, and the script is loaded again (NOSCRIPT).
        after = await limiter.check("alerts", "alice")
        assert after.allowed and not after.degraded and after.remaining == 2
        assert limiter.fail_open_active is False
        recovered = messages(caplog)[1:]
        assert len(recovered) == 1 and recovered[0].startswith("rate limiter reached Redis again")
        assert "5 checks were decided without it" in recovered[0]
        decisions = [await limiter.check("alerts", "alice") for _ in range(3)]
        assert [d.allowed for d in decisions] == [True, True, False]
    finally:
        await limiter.close()


async def test_redis_outage_fails_closed_when_configured(own_redis, make_settings, caplog):
    settings = make_settings({"BOTMON_RATE_LIMIT_FAIL": "closed"}, redis_url=own_redis.url)
    limiter = create_limiter(settings, retry_interval=RETRY)
    caplog.set_level(logging.INFO, logger="gateway.ratelimit")
    try:
        assert (await limiter.check("logs", "alice")).allowed

        await own_redis.kill()
        refused = await limiter.check("logs", "alice")
        assert not refused.allowed and refused.degraded
        assert refused.retry_after >= 1
        assert refused.headers()["Retry-After"] == str(refused.retry_after)
        assert refused.headers()["X-RateLimit-Remaining"] == "0"
        assert limiter.backend_down is True and limiter.fail_open_active is False
        assert not (await limiter.check("logs", "bob")).allowed
        assert limiter.counters == {"allowed": 1, "limited": 0, "errors": 2}
        assert "failing closed" in messages(caplog)[0]

        await own_redis.start()
        await asyncio.sleep(RETRY)
        assert (await limiter.check("logs", "alice")).allowed
        assert limiter.backend_down is False
    finally:
        await limiter.close()


async def test_recovery_is_noticed_without_traffic(own_redis, make_settings):
    """A replica that gets no limited request during the outage still sees Redis return."""
    limiter = create_limiter(make_settings(redis_url=own_redis.url), retry_interval=RETRY)
    try:
        await own_redis.kill()
        assert (await limiter.check("logs", "alice")).degraded
        assert limiter.backend_down is True
        await own_redis.start()
        await eventually(lambda: not limiter.backend_down, within=10 * RETRY + 5,
                         interval=RETRY / 4)
        assert limiter.counters["errors"] == 1, "no check was made to notice the recovery"
    finally:
        await limiter.close()


async def test_retries_a_dead_redis_at_most_once_per_interval(own_redis, make_settings):
    settings = make_settings(redis_url=own_redis.url)
    limiter = create_limiter(settings, retry_interval=60)
    try:
        await own_redis.kill()
        await limiter.check("logs", "alice")
        await own_redis.start()
        # Redis is back, but the limiter waits out its retry interval before asking again.
        decisions = await asyncio.gather(*(limiter.check("logs", "alice") for _ in range(20)))
        assert all(d.degraded for d in decisions)
        assert limiter.fail_open_active is True
    finally:
        await limiter.close()


async def test_redis_command_errors_fail_open(redis_url, make_settings, caplog):
    limiter = create_limiter(make_settings(redis_url=redis_url), retry_interval=RETRY)
    probe = aioredis.Redis.from_url(redis_url)
    caplog.set_level(logging.INFO, logger="gateway.ratelimit")
    try:
        await probe.set("botmon:rl:logs:mallory", "not a sorted set")
        decision = await limiter.check("logs", "mallory")
        assert decision.allowed and decision.degraded
        assert limiter.fail_open_active is True
        assert "WRONGTYPE" in messages(caplog)[0]
        await probe.delete("botmon:rl:logs:mallory")
        await asyncio.sleep(RETRY)
        assert not (await limiter.check("logs", "mallory")).degraded
        assert limiter.fail_open_active is False
    finally:
        await probe.aclose()
        await limiter.close()
