"""Background probing, the single-flight cache, readiness and WatchHealth."""

from __future__ import annotations

import asyncio
import time

from grpc_health.v1 import health_pb2

from botmon.health.v1 import health_service_pb2 as pb
from tests.health.conftest import serve

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def test_a_flood_of_requests_is_one_probe_round(health_settings, fake_llm):
    fake_llm.delay = 0.2
    settings = health_settings(probe_llm_url=fake_llm.url, probe_interval=0.5)
    async with serve(settings) as running:
        first = await running.detailed()
        await asyncio.sleep(0.6)  # stale: the flood joins the background round, or starts one
        before = fake_llm.hits
        replies = await asyncio.gather(*(running.detailed() for _ in range(100)))
        assert fake_llm.hits - before <= 1
        stamps = {r.components.llm.checked_at.ToNanoseconds() for r in replies}
        assert len(stamps) == 1
        assert stamps.pop() > first.components.llm.checked_at.ToNanoseconds()


async def test_a_sustained_flood_probes_at_most_once_per_interval(health_settings, fake_llm):
    fake_llm.delay = 0.05
    settings = health_settings(probe_llm_url=fake_llm.url, probe_interval=0.25)
    async with serve(settings) as running:
        await running.detailed()
        before = fake_llm.hits
        started = time.monotonic()
        for _ in range(10):
            await asyncio.gather(*(running.detailed() for _ in range(50)))
            await asyncio.sleep(0.1)
        window = time.monotonic() - started
        assert fake_llm.hits - before <= window / 0.25 + 1


async def test_fresh_cache_answers_without_probing(health_settings, fake_llm):
    async with serve(health_settings(probe_llm_url=fake_llm.url)) as running:
        await running.detailed()
        before = fake_llm.hits
        await asyncio.gather(*(running.detailed() for _ in range(20)))
        assert fake_llm.hits == before


async def test_probes_run_in_the_background(health_settings, fake_llm):
    async with serve(health_settings(probe_llm_url=fake_llm.url, probe_interval=0.1)):
        await asyncio.sleep(0.6)
        assert fake_llm.hits >= 3


async def test_probes_run_in_parallel(health_settings, fake_llm, silent_port):
    fake_llm.delay = 1.0
    settings = health_settings(probe_llm_url=fake_llm.url, probe_timeout=1.0,
                               probe_cache_url=f"redis://127.0.0.1:{silent_port}/0")
    async with serve(settings) as running:
        health = await running.detailed()
    # Two probes of 1 s each (the stalled cache, the slow LLM) took 1 s, not 2 s: the
    # bound leaves room for a loaded machine and still tells the two apart.
    llm, cache = health.components.llm, health.components.cache
    start = min(llm.checked_at.ToNanoseconds() - llm.probe_duration_ms * 1e6,
                cache.checked_at.ToNanoseconds() - cache.probe_duration_ms * 1e6)
    end = max(llm.checked_at.ToNanoseconds(), cache.checked_at.ToNanoseconds())
    assert (end - start) / 1e9 < 1.6


async def test_not_serving_until_the_first_round(health_settings, fake_llm):
    fake_llm.delay = 0.5
    async with serve(health_settings(probe_llm_url=fake_llm.url)) as running:
        assert await running.serving() == NOT_SERVING
        await running.stub.GetHealth(pb.GetHealthRequest(), timeout=5)
        for _ in range(50):
            if await running.serving() == SERVING:
                break
            await asyncio.sleep(0.02)
        assert await running.serving() == SERVING


async def test_watch_sends_the_snapshot_then_every_round(health_settings):
    async with serve(health_settings(probe_interval=0.2)) as running:
        await running.detailed()
        call = running.stub.WatchHealth(pb.WatchHealthRequest())
        first = await asyncio.wait_for(call.read(), 2)
        second = await asyncio.wait_for(call.read(), 2)
        third = await asyncio.wait_for(call.read(), 2)
        call.cancel()
    assert first.health.status == "healthy"
    stamps = [m.health.timestamp.ToNanoseconds() for m in (first, second, third)]
    assert stamps == sorted(set(stamps))


async def test_watch_before_the_first_round_waits_for_it(health_settings, fake_llm):
    fake_llm.delay = 0.3
    async with serve(health_settings(probe_llm_url=fake_llm.url)) as running:
        call = running.stub.WatchHealth(pb.WatchHealthRequest())
        first = await asyncio.wait_for(call.read(), 3)
        call.cancel()
    assert first.health.components.llm.model_loaded


async def test_cancelled_watchers_are_forgotten(health_settings):
    async with serve(health_settings(probe_interval=0.1)) as running:
        calls = [running.stub.WatchHealth(pb.WatchHealthRequest()) for _ in range(5)]
        for call in calls:
            await asyncio.wait_for(call.read(), 2)
        assert (await running.status())["health"][0].details["watchers"] == 5
        for call in calls:
            call.cancel()
        for _ in range(50):
            await asyncio.sleep(0.05)
            if (await running.status())["health"][0].details["watchers"] == 0:
                break
        assert (await running.status())["health"][0].details["watchers"] == 0


async def test_stopping_ends_watch_streams(health_settings):
    async with serve(health_settings()) as running:
        call = running.stub.WatchHealth(pb.WatchHealthRequest())
        await asyncio.wait_for(call.read(), 2)
        started = time.monotonic()
        await running.server.stop(grace=5)
        # The stream ended by itself, so the drain did not wait out its grace.
        assert time.monotonic() - started < 2
        assert (await asyncio.wait_for(call.code(), 3)).name == "OK"
