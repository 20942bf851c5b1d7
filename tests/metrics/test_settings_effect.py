"""The metrics service's ingest, fan-out and pool settings take effect."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import asyncpg
import pytest
import redis.asyncio as aioredis

from botmon.metrics.v1 import metrics_pb2
from botmon.metrics.v1 import metrics_service_pb2 as pb


def _requests(count: int) -> pb.RecordEventsRequest:
    now = time.time()
    events = []
    for i in range(count):
        event = metrics_pb2.Event(type="request", method="GET", route="/chat", status=200,
                                  duration_ms=10.0 + i % 7)
        event.timestamp.FromNanoseconds(int((now - i * 1e-3) * 1e9))
        events.append(event)
    return pb.RecordEventsRequest(events=events)


async def test_flush_max_events_bounds_each_ingest_transaction(start_metrics, tmp_path):
    transactions = {}
    for cap in (10, 50_000):
        async with start_metrics(flush_max_events=cap) as (server, stub):
            before = server.details()["ingest_transactions"]
            # The test holds the store's write lock while the batches arrive, so they queue
            # behind the first transaction whatever the machine's speed; then lets go.
            lock = sqlite3.connect(tmp_path / "botmon.db", isolation_level=None,
                                   check_same_thread=False)
            await asyncio.to_thread(lock.execute, "BEGIN IMMEDIATE")
            sent = [asyncio.ensure_future(stub.RecordEvents(_requests(5), timeout=30))
                    for _ in range(40)]
            await asyncio.sleep(1.0)
            await asyncio.to_thread(lock.execute, "ROLLBACK")
            lock.close()
            await asyncio.gather(*sent)
            transactions[cap] = server.details()["ingest_transactions"] - before
    # 40 queued batches of 5: merged two at a time at most under a cap of 10 events,
    # so at least 20 transactions; uncapped, the queued batches merge into few.
    assert transactions[10] >= 20
    assert transactions[50_000] < 20


async def test_fanout_channel_names_the_redis_channel(start_metrics, redis_url):
    client = aioredis.Redis.from_url(redis_url)
    try:
        async with start_metrics(redis_url=redis_url, fanout_channel="ops:metrics-commits"):
            subscription = client.pubsub()
            await subscription.subscribe("ops:metrics-commits")
            async with start_metrics(redis_url=redis_url,
                                     fanout_channel="ops:metrics-commits") as (_, stub):
                await stub.RecordEvents(_requests(5), timeout=10)
                deadline = time.monotonic() + 10
                message = None
                while message is None and time.monotonic() < deadline:
                    message = await subscription.get_message(ignore_subscribe_messages=True,
                                                             timeout=1.0)
            await subscription.aclose()
        assert message is not None and message["channel"] == b"ops:metrics-commits"
        assert (await client.pubsub_numsub("botmon:9:metrics:committed")) == [
            (b"botmon:9:metrics:committed", 0)]
    finally:
        await client.aclose()


@pytest.mark.parametrize("pool", [1, 3])
async def test_pg_pool_caps_the_connections_of_a_replica(start_metrics, postgres_url, pool):
    async with start_metrics(store_url=postgres_url, postgres_pool_size=pool) as (_, stub):
        await asyncio.gather(*(stub.GetPerformanceMetrics(
            pb.GetPerformanceMetricsRequest(period="24h"), timeout=10) for _ in range(30)),
            *(stub.RecordEvents(_requests(20), timeout=10) for _ in range(10)))
        conn = await asyncpg.connect(postgres_url)
        try:
            connections = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 "
                "AND pid <> pg_backend_pid()", postgres_url.rsplit("/", 1)[1])
        finally:
            await conn.close()
    assert connections == pool if pool == 1 else 1 < connections <= pool
