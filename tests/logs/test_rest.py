"""The logs routes through the real gateway (tests/harness.py): REST, Loki push, WebSocket tail."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets

from tests.harness import Suite
from tests.logs.support import now


@pytest.fixture
async def suite(make_settings, tmp_path):
    settings = make_settings(heartbeat_interval=0.2)
    async with Suite(settings, components=("health", "logs")) as running:
        yield running


@pytest.fixture
async def http():
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def _post(http, suite, body, role="operator"):
    return await http.post(f"{suite.base}/logs", headers=suite.headers(role), json=body)


async def _get(http, suite, path="/logs", role="viewer", **params):
    return await http.get(f"{suite.base}{path}", headers=suite.headers(role), params=params)


async def test_ingest_and_query_keep_the_documented_shape(http, suite):
    t = int(now()) - 30
    reply = await _post(http, suite, {"logs": [
        {"timestamp": f"{t}", "level": "info", "service": "web_server",
         "message": "Request processed successfully",
         "metadata": {"request_id": "req_123", "user_id": "user_456", "duration_ms": 150}},
        {"level": "error", "service": "database", "message": "Connection timeout",
         "metadata": {"query": "SELECT * FROM users", "timeout_ms": 5000}},
    ]})
    assert reply.status_code == 202, reply.text
    assert reply.json()["accepted"] == 2
    page = await _get(http, suite, **{"metadata.user_id": "user_456"})
    assert page.status_code == 200, page.text
    body = page.json()
    assert body["total"] == 1 and body["query"]["level"] == "all"
    assert body["query"]["limit"] == 100
    (log,) = body["logs"]
    assert log["timestamp"].endswith("Z") and log["level"] == "info"
    assert log["service"] == "web_server" and log["message"] == "Request processed successfully"
    assert log["metadata"] == {"request_id": "req_123", "user_id": "user_456", "duration_ms": 150}
    assert (await _get(http, suite, level="warn")).json()["total"] == 1
    span = await _get(http, suite, start_time=str(t), end_time=f"{t + 1}", order="asc")
    assert [entry["message"] for entry in span.json()["logs"]] == [
        "Request processed successfully"]
    rfc = await _get(http, suite, start_time="2000-01-01T00:00:00Z", q="timeout")
    assert rfc.json()["total"] == 1


async def test_pages_follow_next_cursor(http, suite):
    await _post(http, suite, {"logs": [{"level": "info", "service": "s", "message": f"m{i}",
                                        "timestamp": str(int(now()) - 100 + i)}
                                       for i in range(25)]})
    seen, cursor = [], None
    while True:
        params = {"limit": 10, **({"cursor": cursor} if cursor else {})}
        body = (await _get(http, suite, **params)).json()
        assert body["total"] == 25
        seen += [entry["message"] for entry in body["logs"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == [f"m{i}" for i in range(24, -1, -1)]


async def test_partial_success_and_a_batch_with_nothing_valid(http, suite):
    reply = await _post(http, suite, {"logs": [
        {"level": "info", "service": "s", "message": "ok"},
        {"level": "info", "service": "", "message": "no service"}]})
    assert reply.status_code == 202
    assert reply.json()["errors"] == [{"index": 1, "batch": 0,
                                       "message": "service is required: name the service "
                                                  "that logged the entry"}]
    reply = await _post(http, suite, {"logs": [{"level": "loud", "service": "s",
                                                "message": "x"}]})
    assert reply.status_code == 400
    assert reply.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "no entry was stored" in reply.json()["error"]["message"]


@pytest.mark.parametrize(("params", "says"), [
    ({"limit": "5000"}, "limit must be between 1 and 1000"),
    ({"limit": "ten"}, "limit"),
    ({"level": "loud"}, "level 'loud' is not a level"),
    ({"order": "up"}, "order must be asc or desc"),
    ({"start_time": "yesterday"}, "start_time"),
    ({"cursor": "garbage"}, "cursor is not a cursor"),
    ({"q": "..."}, "q must contain at least one word"),
])
async def test_bad_queries_are_400_saying_what_to_fix(http, suite, params, says):
    reply = await _get(http, suite, **params)
    assert reply.status_code == 400, reply.text
    assert says in reply.json()["error"]["message"]


@pytest.mark.parametrize(("body", "says"), [
    ({"logs": []}, "logs is empty"),
    ({"logs": [{"level": "info", "service": "s", "message": "x", "timestamp": "soon"}]},
     "timestamp"),
    ({"logs": [{"level": "info", "service": "s", "message": "x", "metadata": "flat"}]},
     "metadata"),
    ({"logs": "not a list"}, "logs"),
])
async def test_bad_bodies_are_400_saying_what_to_fix(http, suite, body, says):
    reply = await _post(http, suite, body)
    assert reply.status_code == 400, reply.text
    assert says in reply.json()["error"]["message"]


async def test_only_operators_ingest(http, suite):
    reply = await _post(http, suite, {"logs": [{"level": "info", "service": "s",
                                                "message": "x"}]}, role="viewer")
    assert reply.status_code == 403


async def test_loki_push_at_the_server_root(http, suite):
    body = {"streams": [{"stream": {"job": "promtail", "env": "prod"},
                         "values": [[str(int(now() * 1e9)), "loki line"]]}]}
    reply = await http.post(f"{suite.url}/loki/api/v1/push", headers=suite.headers("operator"),
                            json=body)
    assert reply.status_code in (200, 202, 204), reply.text
    logs = (await _get(http, suite, service="promtail")).json()["logs"]
    assert [(entry["message"], entry["metadata"]) for entry in logs] == [
        ("loki line", {"env": "prod"})]


async def test_error_summary(http, suite):
    await _post(http, suite, {"logs": [
        {"level": "error", "service": "api", "message": "db",
         "metadata": {"error_type": "database_error"}},
        {"level": "error", "service": "jobs", "message": "?"}]})
    body = (await _get(http, suite, "/errors/summary", period="1h")).json()
    summary = body["summary"]
    assert summary["total_errors"] == 2 and summary["period"] == "1h"
    assert summary["errors_by_type"] == {"database_error": 1, "unknown_error": 1}
    assert summary["errors_by_service"] == {"api": 1, "jobs": 1}
    assert summary["error_rate"] == 0 and summary["last_error_time"].endswith("Z")
    bad = await _get(http, suite, "/errors/summary", period="2h")
    assert bad.status_code == 400
    assert "period must be one of 1h, 24h, 7d, 30d" in bad.json()["error"]["message"]


async def test_status_reports_retention(http, suite):
    await _post(http, suite, {"logs": [{"level": "info", "service": "s", "message": "x"}]})
    for _ in range(100):
        services = (await _get(http, suite, "/status")).json()["services"]
        (logs,) = [s for s in services if s["name"] == "logs"]
        if logs.get("details", {}).get("retention", {}).get("stored_entries"):
            break
        await asyncio.sleep(0.1)
    retention = logs["details"]["retention"]
    assert retention["max_age_days"] == {"debug": 30, "info": 30, "warn": 30, "error": 30}
    assert retention["max_bytes"] == 0 and retention["stored_entries"] == 1
    assert "expired_by_age" in retention["last_run"]


async def test_websocket_tail(http, suite):
    url = f"{suite.ws_url}/ws/logs?level=warn&service=api&access_token={suite.tokens['viewer']}"
    async with websockets.connect(url) as socket:
        frames: asyncio.Queue = asyncio.Queue()

        async def pump():
            async for raw in socket:
                await frames.put(json.loads(raw))

        reader = asyncio.create_task(pump())
        try:
            # The subscription is live once an entry written after connecting arrives.
            async with asyncio.timeout(20):
                while True:
                    await _post(http, suite, {"logs": [
                        {"level": "info", "service": "api", "message": "too low"},
                        {"level": "error", "service": "api", "message": "probe"}]})
                    try:
                        frame = await asyncio.wait_for(frames.get(), 0.5)
                    except TimeoutError:
                        continue
                    break
            assert frame["type"] == "log" and frame["log"]["level"] == "error"
            await _post(http, suite, {"logs": [
                {"level": "warn", "service": "api", "message": "tailed"},
                {"level": "error", "service": "db", "message": "other service"}]})
            async with asyncio.timeout(10):
                while frame["log"]["message"] != "tailed":
                    frame = await frames.get()
            assert frame["log"]["service"] == "api"
        finally:
            reader.cancel()
