"""GetDatabaseResources and GetCacheResources against what PostgreSQL and Redis report."""

from __future__ import annotations

import asyncio

import asyncpg
import grpc
import pytest
import redis.asyncio as aioredis

from botmon.health.v1 import health_service_pb2 as pb
from tests.health.conftest import CLOSED, free_port, serve

# What the service computes, asked of PostgreSQL directly (the probe's own connections,
# named botmon-health, left out).
_ACTIVITY = """
SELECT count(*) FILTER (WHERE state = 'active') AS active,
       count(*) FILTER (WHERE state LIKE 'idle%') AS idle,
       count(*) FILTER (WHERE wait_event_type = 'Lock') AS waiting
  FROM pg_stat_activity
 WHERE datname = current_database() AND backend_type = 'client backend'
   AND application_name <> 'botmon-health' AND pid <> pg_backend_pid()
"""


async def test_database_resources_equal_what_postgresql_reports(health_settings, postgres_url):
    admin = await asyncpg.connect(postgres_url)
    idle = [await asyncpg.connect(postgres_url) for _ in range(2)]
    locker, waiter, sleeper = [await asyncpg.connect(postgres_url) for _ in range(3)]
    await admin.execute("CREATE TABLE t (x int)")
    await locker.execute("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE")  # idle in transaction
    waiting = asyncio.create_task(waiter.fetch("SELECT * FROM t"))  # active, waits on the lock
    sleeping = asyncio.create_task(sleeper.execute("SELECT pg_sleep(30)"))  # active, slow
    try:
        await asyncio.sleep(0.4)
        settings = health_settings(probe_database_url=postgres_url, slow_query_ms=200)
        async with serve(settings) as running:
            sessions_before = await admin.fetchval(
                "SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
            reply = await running.stub.GetDatabaseResources(pb.GetDatabaseResourcesRequest(),
                                                            timeout=5)
            own = await admin.fetchrow(_ACTIVITY)
            max_connections = int(await admin.fetchval("SHOW max_connections"))
            backends, sessions = await admin.fetchrow(
                "SELECT numbackends, sessions FROM pg_stat_database "
                "WHERE datname = current_database()")
    finally:
        await admin.execute("SELECT pg_cancel_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        await asyncio.gather(waiting, sleeping, return_exceptions=True)
        for conn in (admin, *idle, locker, waiter, sleeper):
            await conn.close()
    pool, queries = reply.pool, reply.queries
    assert reply.backend == "postgresql"
    assert pool.max_connections == max_connections
    # Sleeper and waiter run; the two idle ones, the locker and admin do not.
    assert (pool.active_connections, pool.idle_connections, pool.waiting_requests) == (2, 4, 1)
    # Asked while it runs this query, admin leaves itself out; it was idle for the service.
    assert (own["active"], own["idle"] + 1, own["waiting"]) == (2, 4, 1)
    assert queries.active == 2
    assert queries.slow_queries == 2
    assert 200 < queries.average_duration_ms < 30_000
    assert sessions_before <= pool.total_created <= sessions
    assert pool.total_closed == pytest.approx(pool.total_created - backends, abs=2)


async def test_database_resources_of_the_sqlite_store(health_settings):
    async with serve(health_settings()) as running:
        reply = await running.stub.GetDatabaseResources(pb.GetDatabaseResourcesRequest(),
                                                        timeout=5)
    assert reply.backend == "sqlite"
    assert (reply.pool.max_connections, reply.pool.active_connections,
            reply.pool.idle_connections, reply.pool.total_created) == (1, 0, 1, 1)


async def test_database_resources_when_the_database_is_down(health_settings):
    url = f"postgresql://postgres@{CLOSED.format(port=free_port())}/postgres"
    async with serve(health_settings(probe_database_url=url)) as running:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await running.stub.GetDatabaseResources(pb.GetDatabaseResourcesRequest(), timeout=5)
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "database unreachable: connection refused" in error.value.details()


async def test_database_resources_when_the_database_stalls(health_settings, silent_port):
    url = f"postgresql://postgres@127.0.0.1:{silent_port}/postgres"
    async with serve(health_settings(probe_database_url=url, probe_timeout=0.3)) as running:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await running.stub.GetDatabaseResources(pb.GetDatabaseResourcesRequest(), timeout=5)
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "did not answer within 0.3s" in error.value.details()


async def test_cache_resources_equal_what_redis_reports(health_settings, redis_url):
    client = aioredis.Redis.from_url(redis_url)
    try:
        await client.mset({f"key{i}": i for i in range(25)})
        await client.get("key1")
        await client.get("missing")
        async with serve(health_settings(probe_cache_url=redis_url)) as running:
            before = await client.info()
            reply = await running.stub.GetCacheResources(pb.GetCacheResourcesRequest(),
                                                         timeout=5)
            after = await client.info()
    finally:
        await client.aclose()
    cache = reply.cache

    def keys(info):
        return sum(v["keys"] for k, v in info.items() if k.startswith("db"))

    # Other tests may share this Redis: each figure lies between two readings of INFO.
    assert before["keyspace_hits"] <= cache.hits <= after["keyspace_hits"]
    assert before["keyspace_misses"] <= cache.misses <= after["keyspace_misses"]
    assert cache.hit_rate == pytest.approx(cache.hits / (cache.hits + cache.misses), abs=1e-5)
    assert before["evicted_keys"] <= cache.evictions <= after["evicted_keys"]
    assert min(keys(before), keys(after)) <= cache.keys_count <= max(keys(before), keys(after))
    assert cache.keys_count >= 25
    low, high = sorted((before["used_memory"], after["used_memory"]))
    assert low * 0.9 / 1e6 <= cache.memory_used_mb <= high * 1.1 / 1e6
    if before["maxmemory"]:
        assert cache.memory_limit_mb == pytest.approx(before["maxmemory"] / 1e6, abs=0.001)
    else:
        assert not cache.HasField("memory_limit_mb")  # JSON null: Redis has no limit


async def test_cache_resources_without_a_cache(health_settings):
    async with serve(health_settings()) as running:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await running.stub.GetCacheResources(pb.GetCacheResourcesRequest(), timeout=5)
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error.value.details() == (
        "no cache configured: set BOTMON_PROBE_CACHE_URL or BOTMON_REDIS_URL")


async def test_cache_resources_when_redis_is_down(health_settings):
    url = f"redis://{CLOSED.format(port=free_port())}/0"
    async with serve(health_settings(probe_cache_url=url)) as running:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await running.stub.GetCacheResources(pb.GetCacheResourcesRequest(), timeout=5)
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "cache unreachable: connection refused" in error.value.details()
