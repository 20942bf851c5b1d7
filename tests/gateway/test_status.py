"""Gateway status: GET /status from the WatchStatus snapshot, and the call when it is stale."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.gateway.fakes import ScriptedStatus, status_list
from tests.harness import Suite


@pytest.fixture
async def suite(make_settings):
    async with Suite(make_settings(grpc_deadline=0.5), components=(),
                     servicers={"health": ScriptedStatus()}) as suite:
        yield suite


async def _states(http, suite: Suite) -> tuple[int, list[str]]:
    r = await http.get(f"{suite.base}/status", headers=suite.headers())
    return r.status_code, [s["status"] for s in r.json().get("services", [])]


async def _until(http, suite: Suite, want: tuple[int, list[str]], within: float) -> float:
    """Seconds until GET /status answers ``want``; fails after ``within``."""
    started = time.monotonic()
    while (got := await _states(http, suite)) != want:
        assert time.monotonic() - started < within, f"still {got}, not {want}"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_status_follows_the_watched_list_without_a_call_per_request(suite, http):
    health = suite.servicers["health"]
    await _until(http, suite, (200, ["running"]), within=5)
    calls = len(health.calls)
    for _ in range(20):
        assert await _states(http, suite) == (200, ["running"])
    assert [name for name, *_ in health.calls[calls:]] == []
    health.lists.put_nowait(status_list("stopped"))
    assert await _until(http, suite, (200, ["stopped"]), within=1) < 1
    r = await http.get(f"{suite.base}/status", headers=suite.headers())
    assert r.headers["content-type"] == "application/json"
    assert r.json()["timestamp"] == "2024-01-15T10:00:00Z"
    assert r.json()["services"][0]["instance_id"] == "web-1"


async def test_a_stale_list_is_not_served(suite, http):
    health = suite.servicers["health"]
    # The stream never brings the change, even when the gateway opens it again.
    health.silent_rewatch = True
    await _until(http, suite, (200, ["running"]), within=5)
    # Changed, but not streamed: the gateway's copy is now the stale one.
    health.current = status_list("degraded")
    assert await _states(http, suite) == (200, ["running"])
    # Once the copy is 2 s old the gateway calls GetStatus instead.
    await _until(http, suite, (200, ["degraded"]), within=6)
    assert any(name == "GetStatus" for name, *_ in health.calls)


async def test_health_down_is_503_naming_it(suite, http):
    await _until(http, suite, (200, ["running"]), within=5)
    await suite.stop("health")
    await _until(http, suite, (503, []), within=3)
    r = await http.get(f"{suite.base}/status", headers=suite.headers())
    assert "health" in r.json()["error"]["message"]


async def test_unknown_query_parameters_are_400_from_the_snapshot_too(suite, http):
    await _until(http, suite, (200, ["running"]), within=5)
    r = await http.get(f"{suite.base}/status?verbose=1", headers=suite.headers())
    assert r.status_code == 400
    assert "verbose" in r.json()["error"]["message"]
