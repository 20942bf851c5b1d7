"""Latency percentiles within 1 % of the exact values: one bucket, many, rollups, replicas."""

from __future__ import annotations

import asyncio
import math
import random
import sqlite3
import time

import asyncpg

from botmon.metrics.v1 import metrics_pb2
from botmon.metrics.v1 import metrics_service_pb2 as pb
from services.metrics.store import StoreLocation

QS = {"p50": 0.5, "p95": 0.95, "p99": 0.99}


def exact(values: list[float], q: float) -> float:
    """The value at rank floor(q * (n - 1)), the rank the sketch answers for."""
    ordered = sorted(values)
    return ordered[math.floor(q * (len(ordered) - 1))]


def assert_close(got, values: list[float]) -> None:
    for name, q in QS.items():
        want = exact(values, q)
        assert abs(getattr(got, name) - want) <= 0.01 * want + 1e-3, (name, getattr(got, name),
                                                                      want)


def requests(stamps_and_durations, status=200) -> list[metrics_pb2.Event]:
    events = []
    for ts, duration in stamps_and_durations:
        event = metrics_pb2.Event(type="request", method="GET", route="/chat", status=status,
                                  duration_ms=duration)
        event.timestamp.FromNanoseconds(int(ts * 1e9))
        events.append(event)
    return events


def durations(rng: random.Random, n: int, scale: float) -> list[float]:
    # Long-tailed, like real latencies, with values from ~0.1 ms to seconds.
    return [round(rng.lognormvariate(math.log(scale), 1.2), 3) for _ in range(n)]


async def record(stub, events, chunk=2000) -> None:
    for i in range(0, len(events), chunk):
        reply = await stub.RecordEvents(pb.RecordEventsRequest(events=events[i:i + chunk]))
        assert reply.accepted == len(events[i:i + chunk]), reply.errors[:3]


def point_at(series, start: int):
    return next(p for p in series if p.timestamp.seconds == start)


async def test_one_bucket_within_one_percent(start_metrics, store_url):
    rng = random.Random(1)
    minute = int(time.time()) // 60 * 60 - 20 * 60
    values = durations(rng, 3000, 120)
    async with start_metrics(store_url=store_url) as (_, stub):
        await record(stub, requests((minute + rng.random() * 59.9, v) for v in values))
        reply = await stub.GetPerformanceMetrics(pb.GetPerformanceMetricsRequest(
            period="1h", resolution="minute"))
    assert len(reply.series) == 60
    point = point_at(reply.series, minute)
    assert_close(point, values)
    times = reply.performance.response_times
    assert_close(times, values)
    assert times.min == round(min(values), 3) and times.max == round(max(values), 3)
    assert abs(times.mean - sum(values) / len(values)) < 1e-3
    assert reply.performance.throughput.total_requests == len(values)
    assert abs(point.requests_per_second - len(values) / 60) < 1e-3


async def test_merged_over_many_buckets(start_metrics, store_url):
    rng = random.Random(2)
    now = int(time.time())
    values, events = [], []
    for minute_ago in range(1, 41):
        start = (now // 60 - minute_ago) * 60
        # Each minute has its own distribution, so merging is really tested.
        batch = durations(rng, 150, 20 + 10 * minute_ago)
        values += batch
        events += requests((start + rng.random() * 59, v) for v in batch)
    async with start_metrics(store_url=store_url) as (_, stub):
        await record(stub, events)
        reply = await stub.GetPerformanceMetrics(pb.GetPerformanceMetricsRequest(
            period="1h", resolution="minute"))
    assert reply.performance.throughput.total_requests == len(values)
    assert_close(reply.performance.response_times, values)


async def _queue_rows(store_url: str) -> int:
    location = StoreLocation.parse(store_url)
    if location.kind == "sqlite":
        with sqlite3.connect(location.path) as conn:
            return conn.execute("SELECT count(*) FROM metrics_rollup_queue").fetchone()[0]
    conn = await asyncpg.connect(store_url)
    try:
        return await conn.fetchval("SELECT count(*) FROM metrics_rollup_queue")
    finally:
        await conn.close()


async def test_rollups_match_minute_data(start_metrics, store_url):
    rng = random.Random(3)
    now = int(time.time())
    this_hour = now // 3600 * 3600
    by_hour: dict[int, list[float]] = {}
    events = []
    for hours_ago in range(1, 6):
        hour = this_hour - hours_ago * 3600
        batch = durations(rng, 800, 50 * hours_ago)
        by_hour[hour] = batch
        events += requests((hour + rng.random() * 3599, v) for v in batch)
    everything = [v for batch in by_hour.values() for v in batch]
    async with start_metrics(store_url=store_url, compaction_interval=0.2) as (_, stub):
        await record(stub, events)
        by_minute = await stub.GetPerformanceMetrics(pb.GetPerformanceMetricsRequest(
            period="24h", resolution="minute"))
        for _ in range(100):
            if await _queue_rows(store_url) == 0:
                break
            await asyncio.sleep(0.1)
        assert await _queue_rows(store_url) == 0, "compaction did not run"
        by_hour_reply = await stub.GetPerformanceMetrics(pb.GetPerformanceMetricsRequest(
            period="24h", resolution="hour"))
        by_day = await stub.GetPerformanceMetrics(pb.GetPerformanceMetricsRequest(
            period="7d", resolution="day"))
    assert len(by_hour_reply.series) == 24
    for hour, values in by_hour.items():
        point = point_at(by_hour_reply.series, hour)
        assert_close(point, values)
        minutes = [p for p in by_minute.series if hour <= p.timestamp.seconds < hour + 3600]
        assert sum(round(p.requests_per_second * 60) for p in minutes) == len(values)
        assert abs(point.requests_per_second - len(values) / 3600) < 1e-3
    # Sketch merges are exact: every resolution gives the same whole-period figures.
    for reply in (by_hour_reply, by_day):
        assert reply.performance.response_times == by_minute.performance.response_times
        assert reply.performance.throughput.total_requests == len(everything)
    assert_close(by_minute.performance.response_times, everything)


async def test_two_replicas_on_one_postgres_answer_as_one(start_metrics, postgres_url, tmp_path):
    rng = random.Random(4)
    now = int(time.time())
    values = durations(rng, 6000, 80)
    minutes = [(now // 60 - m) * 60 for m in (2, 3, 4)]
    events = requests((rng.choice(minutes) + rng.random() * 59, v) for v in values)
    for i, event in enumerate(events):
        event.status = (200, 404, 500, 504)[i % 4] if i % 7 == 0 else 200
    request = pb.GetPerformanceMetricsRequest(period="1h", resolution="minute")
    async with start_metrics(store_url=postgres_url) as (_, a), \
            start_metrics(store_url=postgres_url) as (_, b):
        # Interleaved batches on both replicas hit the same minute rows concurrently.
        await asyncio.gather(*(record(stub, events[i:i + 500], chunk=500)
                               for i, stub in zip(range(0, len(events), 500), [a, b] * 12,
                                                  strict=False)))
        reply_a, reply_b = await asyncio.gather(a.GetPerformanceMetrics(request),
                                                b.GetPerformanceMetrics(request))
    async with start_metrics(store_url=f"sqlite:///{tmp_path / 'one.db'}") as (_, one):
        await record(one, events)
        reply_one = await one.GetPerformanceMetrics(request)
    for reply in (reply_a, reply_b):
        assert reply.performance.response_times == reply_one.performance.response_times
        assert reply.performance.error_rates == reply_one.performance.error_rates
        assert reply.performance.throughput.total_requests == len(values)
        for minute in minutes:
            got, want = point_at(reply.series, minute), point_at(reply_one.series, minute)
            assert (got.p50, got.p95, got.p99, got.error_rate) == \
                (want.p50, want.p95, want.p99, want.error_rate)
    assert_close(reply_a.performance.response_times, values)
