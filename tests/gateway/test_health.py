"""Gateway health: /health from the WatchHealth snapshot, /live, /ready, health+json."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.gateway.fakes import (
    RecordingAlerts,
    RecordingLogs,
    RecordingMetrics,
    ScriptedHealth,
    detailed,
)
from tests.harness import Suite


async def wait_for(http, url: str, predicate, within: float = 5.0):
    """Poll ``url`` until ``predicate(response)``; return the last response."""
    deadline = time.monotonic() + within
    while True:
        r = await http.get(url)
        if predicate(r) or time.monotonic() > deadline:
            return r
        await asyncio.sleep(0.05)


@pytest.fixture
async def suite(make_settings):
    # Snapshot stale after 3 * 0.2 + 0.5 = 1.1 s without an update.
    settings = make_settings(probe_interval=0.2, grpc_deadline=0.5)
    async with Suite(settings, components=(), servicers={"health": ScriptedHealth()}) as suite:
        yield suite


async def test_health_follows_the_snapshot(suite, http):
    health = suite.servicers["health"]
    r = await wait_for(http, f"{suite.base}/health", lambda r: r.status_code == 200)
    assert r.status_code == 200
    assert r.json() == {"status": "healthy", "timestamp": "2024-01-15T10:00:00Z",
                        "version": "1.0.0"}
    calls = len(health.calls)
    for _ in range(20):
        await http.get(f"{suite.base}/health")
    assert len(health.calls) == calls  # no gRPC call per request
    health.updates.put_nowait(detailed("degraded"))
    r = await wait_for(http, f"{suite.base}/health", lambda r: r.json()["status"] == "degraded")
    assert r.status_code == 200 and r.json()["status"] == "degraded"
    health.updates.put_nowait(detailed("unhealthy"))
    r = await wait_for(http, f"{suite.base}/health", lambda r: r.status_code == 503)
    assert r.json()["status"] == "unhealthy"


async def test_health_service_down_is_503_quickly_then_recovers(suite, http):
    await wait_for(http, f"{suite.base}/health", lambda r: r.status_code == 200)
    await suite.stop("health")
    started = time.monotonic()
    r = await wait_for(http, f"{suite.base}/health", lambda r: r.status_code == 503)
    assert time.monotonic() - started < 2.0
    body = r.json()
    assert body["status"] == "unhealthy" and body["reason"]
    await suite.start("health")
    r = await wait_for(http, f"{suite.base}/health", lambda r: r.status_code == 200)
    assert r.status_code == 200


async def test_stale_snapshot_is_unhealthy(suite, http):
    await wait_for(http, f"{suite.base}/health", lambda r: r.status_code == 200)
    started = time.monotonic()
    # The scripted health service sends nothing more: the snapshot ages out.
    r = await wait_for(http, f"{suite.base}/health", lambda r: r.status_code == 503, 10.0)
    assert r.status_code == 503
    # Not before the snapshot's age limit; after it, as soon as a loaded machine allows.
    assert 1.0 <= time.monotonic() - started < 8.0
    assert "health" in r.json()["reason"]


async def test_ready_checks_every_backend(make_settings, http):
    servicers = {"health": ScriptedHealth(), "logs": RecordingLogs(),
                 "alerts": RecordingAlerts(), "metrics": RecordingMetrics()}
    async with Suite(make_settings(), components=(), servicers=servicers) as suite:
        r = await http.get(f"{suite.base}/health/ready")
        assert r.status_code == 200, r.text
        assert r.json()["services"] == {n: "SERVING" for n in servicers}
        await suite.stop("alerts")
        r = await wait_for(http, f"{suite.base}/health/ready", lambda r: r.status_code == 503)
        body = r.json()
        assert body["status"] == "not_ready" and body["not_ready"] == ["alerts"]
        r = await http.get(f"{suite.base}/health/live")
        assert r.status_code == 200 and r.json()["status"] == "live"


async def test_detailed_health_json_and_ietf_format(suite, http):
    r = await http.get(f"{suite.base}/health/detailed", headers=suite.headers())
    assert r.status_code == 200
    body = r.json()
    assert body["components"]["database"]["connection_pool"] == {"active": 5, "idle": 15,
                                                                  "max": 20}
    assert body["components"]["llm"]["status"] == "not_configured"
    r = await http.get(f"{suite.base}/health/detailed",
                       headers={**suite.headers(), "Accept": "application/health+json"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/health+json")
    doc = r.json()
    assert doc["status"] == "pass" and doc["releaseId"] == "1.0.0"
    check = doc["checks"]["database:responseTime"][0]
    assert check == {"componentId": "database", "componentType": "datastore",
                     "observedValue": 2.5, "observedUnit": "ms", "status": "pass",
                     "time": "2024-01-15T10:00:00Z"}
    assert doc["checks"]["storage:availableSpace"][0]["observedValue"] == 450
    assert not any(key.startswith("llm:") for key in doc["checks"])
    assert "llm is not configured" in doc["notes"]
    suite.servicers["health"].detailed = detailed("unhealthy")
    r = await http.get(f"{suite.base}/health/detailed",
                       headers={**suite.headers(), "Accept": "application/health+json"})
    assert r.status_code == 503
    doc = r.json()
    assert doc["status"] == "fail" and "database: slow" in doc["output"]
    assert doc["checks"]["database:connections"][0]["status"] == "fail"
