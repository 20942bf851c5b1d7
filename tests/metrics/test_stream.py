"""StreamMetrics: validation, filter, interval, slow subscribers, and fan-out over Redis."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from botmon.metrics.v1 import metrics_pb2
from botmon.metrics.v1 import metrics_service_pb2 as pb
from services.metrics.stream import STREAM_METRICS, Subscription


async def first_ticks(stub, n: int, **request):
    ticks = []
    call = stub.StreamMetrics(pb.StreamMetricsRequest(**request))
    async for reply in call:
        ticks.append(reply)
        if len(ticks) == n:
            call.cancel()
            break
    return ticks


@pytest.mark.parametrize(("request_fields", "complaint"), [
    ({"metrics": ["cpu_usage", "gpu_usage"]},
     "unknown metric 'gpu_usage'; known metrics: cpu_usage, memory_usage"),
    ({"interval_seconds": 0.5}, "interval_seconds must be between 1 and 3600; got 0.5"),
    ({"interval_seconds": -1}, "interval_seconds must be between 1"),
])
async def test_bad_subscriptions_are_refused(start_metrics, request_fields, complaint):
    async with start_metrics() as (_, stub):
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await first_ticks(stub, 1, **request_fields)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert complaint in failure.value.details()


async def test_filter_and_interval(start_metrics):
    async with start_metrics(sample_interval=0.5) as (_, stub):
        ticks = await first_ticks(stub, 3, metrics=["memory_usage,cpu_usage", "cpu_usage"],
                                  interval_seconds=1)
        everything = await first_ticks(stub, 1)
    for tick in ticks:
        assert [u.metric for u in tick.updates] == ["memory_usage", "cpu_usage"]
        assert all(u.type == "metric_update" and u.dropped == 0 for u in tick.updates)
        assert 0 < tick.updates[0].value <= 100
    stamps = [t.updates[0].timestamp.ToNanoseconds() / 1e9 for t in ticks]
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    assert all(0.4 <= gap <= 1.6 for gap in gaps), gaps
    assert [u.metric for u in everything[0].updates] == list(STREAM_METRICS)


async def test_ingested_events_show_in_the_stream(start_metrics):
    async with start_metrics(snapshot_ttl=60.0) as (_, stub):
        call = stub.StreamMetrics(pb.StreamMetricsRequest(metrics=["requests_per_second"]))
        first = await call.read()
        assert first.updates[0].value == 0
        await stub.RecordEvents(pb.RecordEventsRequest(events=[
            metrics_pb2.Event(type="request", method="GET", status=200, duration_ms=1.0)] * 60))
        second = await call.read()
        call.cancel()
    assert second.updates[0].value == 1.0


async def test_slow_subscriber_loses_oldest_ticks_and_never_delays_others():
    values = {key: 1.0 for key in STREAM_METRICS.values()}
    reads = 0

    async def read():
        nonlocal reads
        reads += 1
        return values, float(reads)

    slow = Subscription(["cpu_usage"], 0.01, 3, read)
    fast = Subscription(["cpu_usage"], 0.01, 3, read)
    slow_ticks, fast_ticks = slow.ticks(), fast.ticks()
    first = await anext(slow_ticks)
    got_fast = []
    # The slow reader takes nothing for a while; the fast one keeps up meanwhile.
    started = time.monotonic()
    while time.monotonic() - started < 0.3:
        got_fast.append(await anext(fast_ticks))
    rest = [await anext(slow_ticks) for _ in range(3)]
    await slow_ticks.aclose()
    await fast_ticks.aclose()
    assert fast.dropped == 0 and len(got_fast) >= 10
    assert slow.dropped >= 5
    # What the slow reader gets after its pause is the newest ticks, not the oldest.
    assert rest[0].time > first.time + slow.dropped


async def test_events_on_one_replica_reach_subscribers_of_another(start_metrics, postgres_url,
                                                                 redis_url):
    # A long snapshot TTL: only the Redis announcement can refresh replica B so soon.
    shared = {"store_url": postgres_url, "redis_url": redis_url, "snapshot_ttl": 300.0}
    async with start_metrics(**shared) as (_, a), start_metrics(**shared) as (server_b, b):
        call = b.StreamMetrics(pb.StreamMetricsRequest(metrics=["requests_per_second"]))
        assert (await call.read()).updates[0].value == 0
        for _ in range(50):
            if server_b.bindings[0].servicer.metrics.fanout.connected:
                break
            await asyncio.sleep(0.05)
        await a.RecordEvents(pb.RecordEventsRequest(events=[
            metrics_pb2.Event(type="request", method="GET", status=200, duration_ms=1.0)] * 120))
        seen = [(await call.read()).updates[0].value for _ in range(3)]
        call.cancel()
    assert 2.0 in seen, seen
