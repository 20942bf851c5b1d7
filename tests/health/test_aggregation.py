"""The overall status: worst configured component, weighed by BOTMON_HEALTH_CRITICAL."""

from __future__ import annotations

import pytest

from botmon.health.v1 import health_service_pb2 as pb
from botmon.runtime.config import ConfigError
from services.health.config import HealthSettings
from tests.health.conftest import CLOSED, free_port, serve


def _down(scheme: str) -> str:
    return f"{scheme}://{CLOSED.format(port=free_port())}/0"


async def test_critical_cache_down_makes_the_whole_unhealthy(health_settings):
    critical = HealthSettings.from_env({"BOTMON_HEALTH_CRITICAL": "database,cache"})
    async with serve(health_settings(probe_cache_url=_down("redis")), critical) as running:
        health = await running.detailed()
    assert health.status == "unhealthy"
    assert list(health.critical_components) == ["database", "cache"]


async def test_database_down_only_degrades_when_nothing_is_critical(health_settings):
    settings = health_settings(probe_database_url=_down("postgresql"))
    async with serve(settings, HealthSettings.from_env({"BOTMON_HEALTH_CRITICAL": "none"})) \
            as running:
        health = await running.detailed()
        brief = await running.stub.GetHealth(pb.GetHealthRequest())
    assert health.components.database.status == "unhealthy"
    assert health.status == "degraded"
    assert list(health.critical_components) == []
    assert brief.status == "degraded"
    assert brief.version


async def test_worst_of_several_components(health_settings, fake_llm):
    fake_llm.models = []
    settings = health_settings(probe_llm_url=fake_llm.url, probe_cache_url=_down("redis"),
                               probe_database_url=_down("postgresql"))
    async with serve(settings) as running:
        health = await running.detailed()
    assert [health.components.database.status, health.components.cache.status,
            health.components.llm.status] == ["unhealthy"] * 3
    assert health.status == "unhealthy"


@pytest.mark.parametrize(("environ", "variable"), [
    ({"BOTMON_HEALTH_CRITICAL": "database,disk"}, "BOTMON_HEALTH_CRITICAL"),
    ({"BOTMON_HEALTH_STORAGE_DEGRADED_PERCENT": "150"}, "BOTMON_HEALTH_STORAGE_DEGRADED_PERCENT"),
    ({"BOTMON_HEALTH_STORAGE_UNHEALTHY_PERCENT": "20"}, "BOTMON_HEALTH_STORAGE_UNHEALTHY_PERCENT"),
    ({"BOTMON_HEALTH_STOPPED_RETENTION": "0.5"}, "BOTMON_HEALTH_STOPPED_RETENTION"),
])
def test_bad_health_settings_name_the_variable(environ, variable):
    with pytest.raises(ConfigError, match=f"^{variable}: "):
        HealthSettings.from_env(environ)
