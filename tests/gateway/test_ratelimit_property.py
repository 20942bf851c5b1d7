"""Property: the limiters allow exactly what a sliding window log allows, and agree."""

from __future__ import annotations

import asyncio
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from botmon.runtime.config import Rate
from gateway.ratelimit import MemoryLimiter, RedisLimiter

WINDOW_US = 1_000_000
KEYS = ("a", "b", "c")

# Gaps in microseconds, biased towards exact window multiples to hit the boundary.
gaps = st.one_of(st.integers(0, 400_000), st.sampled_from([0, 1, 250_000, 999_999, 1_000_000]))
requests = st.lists(st.tuples(gaps, st.sampled_from(KEYS)), max_size=60)


def timeline(steps: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Absolute request times (µs) from gaps."""
    now, out = 0, []
    for gap, key in steps:
        now += gap
        out.append((now, key))
    return out


def oracle(events: list[tuple[int, str]], limit: int) -> list[bool]:
    """A request is allowed iff fewer than ``limit`` were allowed in (t - window, t]."""
    allowed: dict[str, list[int]] = {k: [] for k in KEYS}
    out = []
    for t, key in events:
        ok = sum(1 for a in allowed[key] if a > t - WINDOW_US) < limit
        if ok:
            allowed[key].append(t)
        out.append(ok)
    return out


class Clock:
    def __init__(self) -> None:
        self.ns = 0

    def __call__(self) -> int:
        return self.ns


async def drive(limiter, clock: Clock, events, rate_class: str = "p"):
    decisions = []
    for t, key in events:
        clock.ns = t * 1000
        decisions.append(await limiter.check(rate_class, key))
    return decisions


@given(steps=requests, limit=st.integers(1, 6))
def test_memory_limiter_is_an_exact_sliding_window(steps, limit):
    events = timeline(steps)
    clock = Clock()
    limiter = MemoryLimiter({"p": Rate(limit, 1), "default": Rate(1, 1)}, clock=clock)
    decisions = asyncio.run(drive(limiter, clock, events))
    assert [d.allowed for d in decisions] == oracle(events, limit)
    for key in KEYS:
        times = [t for (t, k), d in zip(events, decisions, strict=True) if k == key and d.allowed]
        for t in times:
            assert sum(1 for a in times if t - WINDOW_US < a <= t) <= limit


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=requests, limit=st.integers(1, 6))
def test_redis_and_memory_limiters_agree(redis_url, steps, limit):
    events = timeline(steps)
    rates = {"p": Rate(limit, 1), "default": Rate(1, 1)}
    rate_class = f"p-{uuid.uuid4().hex}"  # a fresh Redis key space per example
    rates[rate_class] = rates["p"]

    async def run():
        memory_clock, redis_clock = Clock(), Clock()
        memory = MemoryLimiter(rates, clock=memory_clock)
        shared = RedisLimiter.from_url(redis_url, rates, clock=redis_clock)
        try:
            return (await drive(memory, memory_clock, events, rate_class),
                    await drive(shared, redis_clock, events, rate_class))
        finally:
            await shared.close()

    from_memory, from_redis = asyncio.run(run())
    assert from_redis == from_memory
    assert [d.allowed for d in from_redis] == oracle(events, limit)
