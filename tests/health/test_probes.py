"""Each probe's healthy, unhealthy and timeout paths, through GetDetailedHealth."""

from __future__ import annotations

import sqlite3
import time

import asyncpg
import psutil
import pytest
import redis.asyncio as aioredis

from botmon.health.v1 import health_service_pb2 as pb
from tests.health.conftest import CLOSED, free_port, serve
from tests.waiting import eventually


async def test_postgresql_probe_reports_what_the_server_says(health_settings, postgres_url):
    async with serve(health_settings(probe_database_url=postgres_url)) as running:
        database = (await running.detailed()).components.database
    conn = await asyncpg.connect(postgres_url)
    try:
        version = await conn.fetchval("SHOW server_version")
        max_connections = int(await conn.fetchval("SHOW max_connections"))
    finally:
        await conn.close()
    assert database.status == "healthy", database.reason
    assert database.backend == "postgresql"
    assert database.version == version.split()[0]
    assert database.connection_pool.max == max_connections
    assert database.latency_ms > 0
    assert database.probe_duration_ms >= database.latency_ms
    assert abs(database.checked_at.ToSeconds() - time.time()) < 30


async def test_postgresql_refused_makes_the_whole_unhealthy(health_settings):
    url = f"postgresql://postgres@{CLOSED.format(port=free_port())}/postgres"
    async with serve(health_settings(probe_database_url=url)) as running:
        health = await running.detailed()
    assert health.components.database.status == "unhealthy"
    assert "refused" in health.components.database.reason
    assert health.status == "unhealthy"  # database is critical by default


async def test_postgresql_that_never_answers_times_out(health_settings, silent_port):
    url = f"postgresql://postgres@127.0.0.1:{silent_port}/postgres"
    started = time.monotonic()
    async with serve(health_settings(probe_database_url=url, probe_timeout=0.3)) as running:
        database = (await running.detailed()).components.database
    assert database.status == "unhealthy"
    assert database.reason == "timed out after 0.3s"
    assert 300 <= database.probe_duration_ms < 1500
    assert time.monotonic() - started < 10


async def test_sqlite_store_is_probed_for_real(health_settings, tmp_path):
    settings = health_settings()
    async with serve(settings) as running:
        database = (await running.detailed()).components.database
    assert database.status == "healthy", database.reason
    assert database.backend == "sqlite"
    assert database.version == sqlite3.sqlite_version
    assert (database.connection_pool.active, database.connection_pool.idle,
            database.connection_pool.max) == (0, 1, 1)
    assert (tmp_path / "botmon.db").exists()


async def test_sqlite_file_that_is_not_the_store_must_exist(health_settings, tmp_path):
    missing = tmp_path / "elsewhere" / "missing.db"
    async with serve(health_settings(probe_database_url=f"sqlite:///{missing}")) as running:
        database = (await running.detailed()).components.database
    assert database.status == "unhealthy"
    assert "unable to open" in database.reason
    assert not missing.exists()


async def test_redis_probe_reports_info(health_settings, redis_url):
    client = aioredis.Redis.from_url(redis_url)
    try:
        async with serve(health_settings(probe_cache_url=redis_url)) as running:
            before = await client.info()
            cache = (await running.detailed()).components.cache
            after = await client.info()
    finally:
        await client.aclose()
    assert cache.status == "healthy", cache.reason
    assert cache.version == before["redis_version"]
    low, high = sorted((before["used_memory"] / 1e6, after["used_memory"] / 1e6))
    assert low * 0.9 <= cache.memory_used_mb <= high * 1.1
    assert 0 <= cache.hit_rate <= 1
    assert cache.latency_ms > 0


async def test_redis_defaults_to_the_suite_redis(health_settings, redis_url):
    async with serve(health_settings(redis_url=redis_url)) as running:
        assert (await running.detailed()).components.cache.status == "healthy"


async def test_redis_refused_only_degrades(health_settings):
    url = f"redis://{CLOSED.format(port=free_port())}/0"
    async with serve(health_settings(probe_cache_url=url)) as running:
        health = await running.detailed()
    assert health.components.cache.status == "unhealthy"
    assert "refused" in health.components.cache.reason.lower()
    assert health.status == "degraded"


async def test_redis_that_never_answers_times_out(health_settings, silent_port):
    url = f"redis://127.0.0.1:{silent_port}/0"
    async with serve(health_settings(probe_cache_url=url, probe_timeout=0.3)) as running:
        cache = (await running.detailed()).components.cache
    assert cache.status == "unhealthy"
    assert cache.reason == "timed out after 0.3s"


async def test_unconfigured_components_do_not_count(health_settings):
    async with serve(health_settings()) as running:
        health = await running.detailed()
    assert health.components.cache.status == "not_configured"
    assert "BOTMON_PROBE_CACHE_URL" in health.components.cache.reason
    assert health.components.llm.status == "not_configured"
    assert health.status == "healthy"


async def test_storage_reports_psutil_figures(health_settings, tmp_path):
    async with serve(health_settings()) as running:
        storage = (await running.detailed()).components.storage
    usage = psutil.disk_usage(str(tmp_path))
    assert storage.status == "healthy", storage.reason
    assert storage.path == str(tmp_path)
    assert storage.available_gb == pytest.approx(usage.free / 1e9, abs=0.5)
    assert storage.used_gb == pytest.approx(usage.used / 1e9, abs=0.5)
    assert storage.total_gb == pytest.approx(usage.total / 1e9, abs=0.001)


async def test_storage_thresholds(health_settings, tmp_path):
    from services.health.config import HealthSettings

    usage = psutil.disk_usage(str(tmp_path))
    free = usage.free / usage.total * 100
    degraded = HealthSettings(storage_degraded_percent=min(99.0, free + (100 - free) / 2),
                              storage_unhealthy_percent=free / 2)
    async with serve(health_settings(), degraded) as running:
        health = await running.detailed()
    assert health.components.storage.status == "degraded"
    assert "% of" in health.components.storage.reason
    assert health.status == "degraded"
    unhealthy = HealthSettings(storage_degraded_percent=99.0,
                               storage_unhealthy_percent=min(98.0, free + (100 - free) / 2))
    async with serve(health_settings(), unhealthy) as running:
        health = await running.detailed()
    assert health.components.storage.status == "unhealthy"
    assert health.status == "degraded"  # storage is not critical by default


async def test_storage_path_missing_is_unhealthy(health_settings, tmp_path):
    missing = tmp_path / "gone"
    async with serve(health_settings(probe_storage_path=missing)) as running:
        storage = (await running.detailed()).components.storage
    assert storage.status == "unhealthy"
    assert "no such file" in storage.reason
    assert str(missing) in storage.reason


async def test_llm_lists_models(health_settings, fake_llm):
    from services.health.config import HealthSettings

    async with serve(health_settings(probe_llm_url=fake_llm.url),
                     HealthSettings(llm_api_key="sk-test-key")) as running:
        llm = (await running.detailed()).components.llm
    assert llm.status == "healthy"
    assert llm.model_loaded is True
    assert llm.model == "local-model"
    assert llm.latency_ms > 0
    assert fake_llm.authorization[-1] == "Bearer sk-test-key"
    # The metrics service is dialled on a closed port: the rate is 0, and says why.
    assert llm.requests_per_second == 0
    assert "metrics service answered UNAVAILABLE" in llm.reason


async def test_llm_base_url_may_end_in_v1(health_settings, fake_llm):
    async with serve(health_settings(probe_llm_url=f"{fake_llm.url}/v1/")) as running:
        assert (await running.detailed()).components.llm.model_loaded


async def test_llm_without_models_is_unhealthy(health_settings, fake_llm):
    fake_llm.models = []
    async with serve(health_settings(probe_llm_url=fake_llm.url)) as running:
        health = await running.detailed()
    assert health.components.llm.status == "unhealthy"
    assert health.components.llm.model_loaded is False
    assert "no model loaded" in health.components.llm.reason
    assert health.status == "degraded"


async def test_llm_http_error_is_unhealthy(health_settings, fake_llm):
    fake_llm.status = 503
    async with serve(health_settings(probe_llm_url=fake_llm.url)) as running:
        llm = (await running.detailed()).components.llm
    assert llm.status == "unhealthy"
    assert "answered HTTP 503" in llm.reason


async def test_llm_refused(health_settings):
    url = f"http://{CLOSED.format(port=free_port())}"
    async with serve(health_settings(probe_llm_url=url)) as running:
        llm = (await running.detailed()).components.llm
    assert llm.status == "unhealthy"
    assert "refused" in llm.reason.lower()


async def test_llm_that_stalls_times_out(health_settings, fake_llm):
    fake_llm.delay = 5
    async with serve(health_settings(probe_llm_url=fake_llm.url, probe_timeout=0.3)) as running:
        started = time.monotonic()
        llm = (await running.detailed()).components.llm
        assert time.monotonic() - started < 2
    assert llm.status == "unhealthy"
    assert llm.reason == "timed out after 0.3s"


async def test_llm_requests_per_second_come_from_the_metrics_service(make_settings, fake_llm):
    from botmon.metrics.v1 import metrics_pb2, metrics_service_pb2
    from tests.harness import Suite

    settings = make_settings(probe_llm_url=fake_llm.url, probe_interval=0.2)
    async with Suite(settings, components=("health", "metrics"), gateway=False) as suite:
        metrics = suite.servers["metrics"].backends.stub("metrics")
        events = [metrics_pb2.Event(type="request", method="GET", route="/chat", status=200,
                                    duration_ms=12) for _ in range(120)]
        await metrics.RecordEvents(metrics_service_pb2.RecordEventsRequest(events=events),
                                   timeout=5)

        async def rate() -> float:
            # The metrics service refreshes its figures at most once per interval.
            return (await metrics.GetApplicationMetrics(
                metrics_service_pb2.GetApplicationMetricsRequest(), timeout=5)
            ).application.requests.rate_per_second

        expected = await eventually(rate, within=10)
        health = suite.servers["health"].backends.stub("health")

        async def llm_rate():
            llm = (await health.GetDetailedHealth(pb.GetDetailedHealthRequest(), timeout=5)
                   ).components.llm
            return llm if llm.requests_per_second > 0 else None

        llm = await eventually(llm_rate, within=10)
    assert llm.requests_per_second == pytest.approx(expected, rel=0.2)
    assert llm.reason == ""
