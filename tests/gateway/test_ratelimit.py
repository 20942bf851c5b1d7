"""The rate limiter through its public surface, against real Redis and in process."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest
import redis.asyncio as aioredis

from gateway.ratelimit import Decision, MemoryLimiter, RedisLimiter, create_limiter

RATES = {"BOTMON_RATE_LIMITS": "alerts=5/minute,burst=50/minute,pair=2/second,shared=30/minute"}


class Clock:
    """A hand-driven clock in nanoseconds."""

    def __init__(self) -> None:
        self.ns = 0

    def __call__(self) -> int:
        return self.ns

    def at(self, seconds: float) -> None:
        self.ns = round(seconds * 1e9)


@pytest.fixture(params=["redis", "memory"])
async def limiter_factory(request, make_settings):
    """Build limiters of one backend (Redis from the ``redis_url`` fixture, or memory)."""
    made = []

    def make(*, clock=None, **overrides):
        if request.param == "redis":
            url = request.getfixturevalue("redis_url")
            settings = make_settings(RATES, redis_url=url, **overrides)
            limiter = (create_limiter(settings) if clock is None
                       else RedisLimiter.from_url(url, settings.rate_limits, clock=clock))
        else:
            settings = make_settings(RATES, **overrides)
            limiter = (create_limiter(settings) if clock is None
                       else MemoryLimiter(settings.rate_limits, clock=clock))
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.close()


async def test_exact_count_at_the_boundary(limiter_factory):
    limiter = limiter_factory()
    decisions = [await limiter.check("alerts", "alice") for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0]
    refused = decisions[-1]
    assert refused.limit == 5 and refused.policy == "5;w=60"
    assert 59 < refused.reset_seconds <= 60
    assert refused.retry_after == 60
    assert not refused.degraded
    assert limiter.counters == {"allowed": 5, "limited": 1, "errors": 0}
    assert limiter.fail_open_active is False


async def test_keys_and_classes_have_separate_budgets(limiter_factory):
    limiter = limiter_factory()
    for _ in range(5):
        await limiter.check("alerts", "alice")
    assert not (await limiter.check("alerts", "alice")).allowed
    assert (await limiter.check("alerts", "bob")).allowed
    assert (await limiter.check("logs", "alice")).remaining == 29


async def test_unknown_class_uses_default(limiter_factory):
    decision = await limiter_factory().check("no-such-class", "alice")
    assert decision.allowed and decision.limit == 120 and decision.policy == "120;w=60"


async def test_window_slides_instead_of_resetting(limiter_factory):
    clock = Clock()
    limiter = limiter_factory(clock=clock)

    async def at(seconds: float) -> Decision:
        clock.at(seconds)
        return await limiter.check("pair", "k")

    assert (await at(0.0)).allowed
    assert (await at(0.5)).allowed
    refused = await at(0.6)
    assert not refused.allowed and refused.reset_seconds == pytest.approx(0.4)
    assert refused.retry_after == 1
    # The request at 0.0 leaves the window exactly at 1.0 (half-open window) ...
    freed = await at(1.0)
    assert freed.allowed and freed.remaining == 0
    assert freed.reset_seconds == pytest.approx(0.5)
    # ... but the one at 0.5 still counts: a fixed window would allow this.
    assert not (await at(1.2)).allowed
    assert (await at(1.5)).allowed


async def test_window_slides_on_redis_server_time(redis_url, make_settings):
    limiter = create_limiter(make_settings(RATES, redis_url=redis_url))
    try:
        assert (await limiter.check("pair", "k")).allowed
        await asyncio.sleep(0.5)
        assert (await limiter.check("pair", "k")).allowed
        refused = await limiter.check("pair", "k")
        assert not refused.allowed and 0 < refused.reset_seconds <= 0.5
        await asyncio.sleep(refused.reset_seconds + 0.05)
        assert (await limiter.check("pair", "k")).allowed
        assert not (await limiter.check("pair", "k")).allowed
    finally:
        await limiter.close()


async def test_exact_under_200_concurrent_checks(limiter_factory):
    limiter = limiter_factory()
    decisions = await asyncio.gather(*(limiter.check("burst", "k") for _ in range(200)))
    allowed = [d for d in decisions if d.allowed]
    assert len(allowed) == 50
    assert sorted(d.remaining for d in allowed) == list(range(50))
    assert limiter.counters == {"allowed": 50, "limited": 150, "errors": 0}


async def test_two_replicas_share_one_budget(redis_url, make_settings):
    settings = make_settings(RATES, redis_url=redis_url)
    first, second = create_limiter(settings), create_limiter(settings)
    try:
        # Taking turns, each replica sees the other's requests counted ...
        turns = [await (first, second)[i % 2].check("shared", "alice") for i in range(10)]
        assert [d.remaining for d in turns] == list(range(29, 19, -1))
        # ... and a concurrent burst through both stops at exactly the shared limit.
        burst = await asyncio.gather(*(
            (first, second)[i % 2].check("shared", "alice") for i in range(100)))
        assert sum(d.allowed for d in burst) == 20
        assert first.counters["allowed"] + second.counters["allowed"] == 30
        assert first.counters["limited"] + second.counters["limited"] == 80
    finally:
        await first.close()
        await second.close()


async def test_unlimited_class_never_touches_redis(redis_url, make_settings):
    limiter = create_limiter(make_settings(RATES, redis_url=redis_url))
    probe = aioredis.Redis.from_url(redis_url)
    try:
        decisions = [await limiter.check("health", "1.2.3.4") for _ in range(500)]
        assert all(d.allowed for d in decisions)
        assert decisions[0].headers() == {}
        assert await probe.keys("botmon:rl:*") == []
        assert limiter.counters == {"allowed": 0, "limited": 0, "errors": 0}
    finally:
        await probe.aclose()
        await limiter.close()


async def test_redis_keys_expire_with_the_window(redis_url, make_settings):
    limiter = create_limiter(make_settings(RATES, redis_url=redis_url))
    probe = aioredis.Redis.from_url(redis_url)
    try:
        await limiter.check("alerts", "alice")
        assert await probe.zcard("botmon:rl:alerts:alice") == 1
        assert 0 < await probe.pttl("botmon:rl:alerts:alice") <= 60_000
    finally:
        await probe.aclose()
        await limiter.close()


SF_STRING = r'"(?:[ !#-\[\]-~]|\\["\\])*"'


async def test_headers_values_and_syntax(limiter_factory):
    limiter = limiter_factory()
    first = await limiter.check("alerts", "alice")
    headers = first.headers()
    assert headers["X-RateLimit-Limit"] == "5"
    assert headers["X-RateLimit-Remaining"] == "4"
    assert headers["X-RateLimit-Reset"] == "60"  # a delta in seconds, not an epoch
    assert headers["RateLimit-Policy"] == '"alerts";q=5;w=60'
    assert headers["RateLimit"] == '"alerts";r=4;t=60'
    assert "Retry-After" not in headers
    for _ in range(4):
        await limiter.check("alerts", "alice")
    refused = (await limiter.check("alerts", "alice")).headers()
    assert refused["X-RateLimit-Remaining"] == "0"
    assert refused["Retry-After"] == "60"
    assert re.fullmatch(SF_STRING + r";r=0;t=\d+", refused["RateLimit"])
    assert re.fullmatch(SF_STRING + r";q=5;w=60", refused["RateLimit-Policy"])


def test_policy_name_is_an_escaped_sf_string():
    decision = Decision(True, 3, 2, 1.2, 0, 'we"ird\\name\u00e9', 10)
    headers = decision.headers()
    assert headers["RateLimit-Policy"] == r'"we\"ird\\name_";q=3;w=10'
    assert re.fullmatch(SF_STRING + r";r=2;t=2", headers["RateLimit"])
    assert headers["X-RateLimit-Reset"] == "2"


async def test_memory_fallback_warns_and_reports_its_backend(make_settings, caplog):
    with caplog.at_level(logging.WARNING, logger="gateway.ratelimit"):
        limiter = create_limiter(make_settings(RATES))
    assert limiter.backend == "memory"
    assert [r.getMessage() for r in caplog.records] == [
        "rate limits are per process; set BOTMON_REDIS_URL to share them"]
    assert limiter.fail_open_active is False
    await limiter.close()


async def test_redis_backend_is_chosen_when_configured(redis_url, make_settings, caplog):
    with caplog.at_level(logging.WARNING, logger="gateway.ratelimit"):
        limiter = create_limiter(make_settings(RATES, redis_url=redis_url))
    assert limiter.backend == "redis" and caplog.records == []
    await limiter.close()


async def test_memory_limiter_evicts_idle_keys(make_settings):
    clock = Clock()
    limiter = MemoryLimiter(make_settings(RATES).rate_limits, clock=clock)
    for i in range(1000):
        await limiter.check("alerts", f"user-{i}")
    assert limiter.tracked_keys() == 1000
    clock.at(30)
    await limiter.check("alerts", "active")
    assert limiter.tracked_keys() == 1001
    clock.at(60.5)
    await limiter.check("alerts", "active")
    assert limiter.tracked_keys() == 1


async def test_script_reloaded_after_script_flush_without_double_counting(redis_url, make_settings):
    limiter = create_limiter(make_settings(RATES, redis_url=redis_url))
    probe = aioredis.Redis.from_url(redis_url)
    try:
        assert (await limiter.check("burst", "k")).remaining == 49
        await probe.script_flush()  # as after a restart or failover: NOSCRIPT for a batch
        burst = await asyncio.gather(*(limiter.check("burst", "k") for _ in range(60)))
        assert sum(d.allowed for d in burst) == 49
        assert await probe.zcard("botmon:rl:burst:k") == 50
        assert limiter.counters == {"allowed": 50, "limited": 11, "errors": 0}
    finally:
        await probe.aclose()
        await limiter.close()
