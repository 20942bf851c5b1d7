"""The health service's REST routes, through the gateway."""

from __future__ import annotations

import asyncio

import httpx
import psutil
import redis

from tests.harness import Suite
from tests.health.conftest import free_port


async def _until_healthy_snapshot(http: httpx.AsyncClient, suite: Suite) -> httpx.Response:
    """GET /health once the gateway's snapshot has arrived from WatchHealth."""
    for _ in range(100):
        response = await http.get(f"{suite.base}/health")
        if response.status_code == 200:
            return response
        await asyncio.sleep(0.05)
    return response


async def test_health_routes(make_settings, redis_url, postgres_url, tmp_path):
    settings = make_settings(probe_cache_url=redis_url, probe_database_url=postgres_url,
                             probe_interval=30.0)
    # A memory limit, so the figure reported is the server's, not a default.
    limited = redis.Redis.from_url(redis_url)
    previous = limited.config_get("maxmemory")["maxmemory"]
    limited.config_set("maxmemory", 200 * 1024 * 1024)
    limited.set("botmon-test-key", "1")
    try:
        await _check_health_routes(settings, redis_url, tmp_path)
    finally:
        limited.config_set("maxmemory", previous)
        limited.close()


async def _check_health_routes(settings, redis_url, tmp_path):
    async with Suite(settings, components=("health",)) as suite, \
            httpx.AsyncClient(timeout=10) as http:
        health = await _until_healthy_snapshot(http, suite)
        assert health.status_code == 200
        assert health.json()["status"] == "healthy"
        assert "reason" not in health.json()
        detailed = await http.get(f"{suite.base}/health/detailed", headers=suite.headers())
        status = await http.get(f"{suite.base}/status", headers=suite.headers())
        database = await http.get(f"{suite.base}/resources/database", headers=suite.headers())
        cache = await http.get(f"{suite.base}/resources/cache", headers=suite.headers())
    assert detailed.status_code == 200, detailed.text
    components = detailed.json()["components"]
    assert components["database"]["status"] == "healthy"
    assert set(components["database"]["connection_pool"]) >= {"active", "idle", "max"}
    assert components["cache"]["status"] == "healthy"
    assert isinstance(components["cache"]["hit_rate"], float | int)
    storage = components["storage"]
    assert abs(storage["available_gb"] - psutil.disk_usage(str(tmp_path)).free / 1e9) < 0.5
    assert components["llm"]["status"] == "not_configured"
    assert components["llm"]["model_loaded"] is False

    assert status.status_code == 200, status.text
    names = [s["name"] for s in status.json()["services"]]
    assert names[:5] == ["gateway", "health", "metrics", "alerts", "logs"]
    assert names[-3:] == ["database", "cache", "llm_server"]
    cache_entry = status.json()["services"][-2]
    assert cache_entry["memory_used_mb"] > 0

    assert database.status_code == 200, database.text
    assert set(database.json()["pool"]) >= {"max_connections", "active_connections",
                                            "idle_connections", "waiting_requests",
                                            "total_created", "total_closed"}
    assert set(database.json()["queries"]) >= {"active", "slow_queries", "average_duration_ms"}

    assert cache.status_code == 200, cache.text
    # The figures of the Redis probed: its maxmemory as set above, and a key count that
    # includes the test's key (other tests' keys in other databases come and go).
    client = redis.Redis.from_url(redis_url)
    try:
        maxmemory = int(client.config_get("maxmemory")["maxmemory"])
    finally:
        client.close()
    assert cache.json()["cache"]["memory_limit_mb"] == round(maxmemory / 1e6, 3) == 209.715
    assert cache.json()["cache"]["keys_count"] >= 1


async def test_unconfigured_cache_is_412(make_settings):
    async with Suite(make_settings(), components=("health",)) as suite, \
            httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{suite.base}/resources/cache", headers=suite.headers())
    assert response.status_code == 412
    assert response.json()["error"]["status"] == "FAILED_PRECONDITION"
    assert "BOTMON_PROBE_CACHE_URL" in response.json()["error"]["message"]


async def test_unhealthy_database_gives_503(make_settings):
    settings = make_settings(
        probe_database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/postgres")
    async with Suite(settings, components=("health",)) as suite, \
            httpx.AsyncClient(timeout=10) as http:
        detailed = await http.get(f"{suite.base}/health/detailed", headers=suite.headers())
        for _ in range(100):
            response = await http.get(f"{suite.base}/health")
            if "reason" not in response.json():  # the snapshot came from WatchHealth
                break
            await asyncio.sleep(0.05)
    assert response.status_code == 503
    assert response.json()["status"] == "unhealthy"
    assert "reason" not in response.json()
    assert detailed.json()["components"]["database"]["status"] == "unhealthy"
    assert "refused" in detailed.json()["components"]["database"]["reason"]
