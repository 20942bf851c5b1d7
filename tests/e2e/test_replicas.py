"""CONTRACT.md across replicas: two gateways and two replicas of every service on one store.

Everything goes through the REST/WebSocket surface of real ``botmon serve``
processes; where "another replica" must be pinned down exactly, a replica is
also called directly over gRPC on its own port.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import websockets

from botmon.logs.v1 import log_entry_pb2, logs_service_pb2, logs_service_pb2_grpc
from tests.e2e.cluster import internal_channel
from tests.waiting import eventually


def _tag() -> str:
    return f"e2e-{uuid.uuid4().hex[:10]}"


async def test_every_gateway_is_ready_and_lists_every_replica(cluster, http):
    for gateway in range(2):
        ready = await http.get(f"{cluster.base(gateway)}/health/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["not_ready"] == []

    async def listed():
        reply = await http.get(f"{cluster.base(1)}/status", headers=cluster.headers())
        assert reply.status_code == 200, reply.text
        running = [s["port"] for s in reply.json()["services"] if s["status"] == "running"]
        return all(port in running for port in cluster.ports.values())

    await eventually(listed, within=10, interval=0.3)


async def test_rate_limit_budget_is_shared_by_both_gateways(cluster, http):
    # The ``default`` class allows 20 per minute per user, counted once for the whole suite.
    headers = cluster.headers("budget-shared")
    seen = []
    for i in range(24):
        reply = await http.get(f"{cluster.base(i % 2)}/status", headers=headers)
        seen.append((reply.status_code, reply.headers.get("X-RateLimit-Remaining")))
    assert [status for status, _ in seen] == [200] * 20 + [429] * 4, seen
    # One budget: the remaining count falls by one per request whichever gateway answers.
    assert [int(remaining) for _, remaining in seen[:20]] == list(range(19, -1, -1)), seen
    refused = await http.get(f"{cluster.base(1)}/status", headers=headers)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    error = refused.json()["error"]
    assert error["code"] == 429 and error["status"] == "RESOURCE_EXHAUSTED"


async def test_rate_limit_is_exact_under_concurrency_across_gateways(cluster, http):
    headers = cluster.headers("budget-concurrent")
    replies = await asyncio.gather(*(http.get(f"{cluster.base(i % 2)}/status", headers=headers)
                                     for i in range(40)))
    statuses = sorted(r.status_code for r in replies)
    assert statuses == [200] * 20 + [429] * 20, statuses


async def test_logs_written_through_one_replica_are_read_through_the_other(cluster):
    service = _tag()
    channels = [internal_channel(cluster.address("logs", i)) for i in range(2)]
    try:
        first, second = (logs_service_pb2_grpc.LogsServiceStub(c) for c in channels)
        written = await first.WriteLogs(logs_service_pb2.WriteLogsRequest(logs=[
            log_entry_pb2.LogEntry(level="info", service=service, message=f"entry {i}")
            for i in range(5)]), timeout=5)
        assert written.accepted == 5
        # Acknowledged means durable in the shared store: the other replica sees it at once.
        listed = await second.ListLogs(logs_service_pb2.ListLogsRequest(service=service,
                                                                        limit=100), timeout=5)
        assert listed.total == 5
        assert sorted(e.message for e in listed.logs) == [f"entry {i}" for i in range(5)]
    finally:
        for channel in channels:
            await channel.close()


async def test_logs_posted_through_one_gateway_are_read_through_the_other(cluster, http):
    service = _tag()
    posted = 0
    for batch in range(6):  # round-robin spreads the batches over both logs replicas
        reply = await http.post(f"{cluster.base(0)}/logs", headers=cluster.headers("operator"),
                                json={"logs": [{"level": "warn", "service": service,
                                                "message": f"batch {batch} line {i}",
                                                "metadata": {"batch": batch}}
                                               for i in range(3)]})
        assert reply.status_code == 202, reply.text
        assert reply.json()["accepted"] == 3
        posted += 3
    for _ in range(4):  # every read, whichever logs replica serves it, sees every entry
        reply = await http.get(f"{cluster.base(1)}/logs",
                               params={"service": service, "limit": 1000},
                               headers=cluster.headers())
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["total"] == posted and len(body["logs"]) == posted


async def test_one_alert_evaluator_notifies_once(cluster, http, receiver):
    name = _tag().replace("-", "_")
    rule = {"name": name, "type": "threshold", "metric": "memory.usage_percent",
            "condition": "greater_than", "threshold": 0, "duration_seconds": 0,
            "severity": "warning", "notify": {"webhook": receiver.url("/hook")}}
    created = await http.post(f"{cluster.base(0)}/alerts/configure", json=rule,
                              headers=cluster.headers("operator"))
    assert created.status_code == 201, created.text
    await eventually(lambda: receiver.at("/hook"), within=15)
    # Many evaluation intervals (0.5 s) later there is still one alert and one notification.
    await asyncio.sleep(3)
    firing = [r for r in receiver.at("/hook") if r.json["status"] == "firing"]
    assert len(firing) == 1, [r.json for r in receiver.at("/hook")]
    for gateway in range(2):
        listed = await http.get(f"{cluster.base(gateway)}/alerts", headers=cluster.headers())
        ours = [a for a in listed.json()["alerts"] if a["rule"] == name]
        assert len(ours) == 1 and ours[0]["state"] == "firing", listed.json()
    status = (await http.get(f"{cluster.base(0)}/status", headers=cluster.headers())).json()
    leaders = [s for s in status["services"] if s["name"] == "alerts"
               and s["status"] == "running" and (s.get("details") or {}).get("leader")]
    assert len(leaders) == 1, status
    deleted = await http.delete(f"{cluster.base(1)}/alerts/rules/{name}",
                                headers=cluster.headers("operator"))
    assert deleted.status_code == 200, deleted.text


async def _frames(socket, count: int, seconds: float) -> list[dict]:
    frames = []
    async with asyncio.timeout(seconds):
        while len(frames) < count:
            frames.append(json.loads(await socket.recv()))
    return frames


async def test_log_tails_on_one_gateway_see_entries_posted_through_the_other(cluster, http):
    service = _tag()
    tails = []
    try:
        # Several subscribers on gateway 0, so both logs replicas hold some of the tails.
        for _ in range(4):
            tails.append(await websockets.connect(
                f"{cluster.ws(0)}/ws/logs?service={service}&access_token="
                f"{cluster.tokens['viewer']}", open_timeout=5))
        await asyncio.sleep(0.5)  # let each TailLogs stream reach its replica
        messages = [f"live {i}" for i in range(6)]
        for message in messages:
            reply = await http.post(f"{cluster.base(1)}/logs",
                                    headers=cluster.headers("operator"),
                                    json={"logs": [{"level": "info", "service": service,
                                                    "message": message}]})
            assert reply.status_code == 202, reply.text
        for tail in tails:
            frames = await _frames(tail, len(messages), seconds=10)
            assert [f["type"] for f in frames] == ["log"] * len(messages)
            assert sorted(f["log"]["message"] for f in frames) == sorted(messages)
    finally:
        for tail in tails:
            await tail.close()


async def test_metric_streams_on_one_gateway_see_events_ingested_through_the_other(cluster, http):
    async def active_sessions(socket) -> float:
        frame = (await _frames(socket, 1, seconds=10))[0]
        assert frame["type"] == "metric_update" and frame["metric"] == "active_sessions"
        return frame["value"]

    async with websockets.connect(
            f"{cluster.ws(0)}/ws/metrics?metrics=active_sessions&interval=1",
            additional_headers=cluster.headers(), open_timeout=5) as socket:
        before = await active_sessions(socket)
        sessions = [f"{_tag()}-{i}" for i in range(3)]
        reply = await http.post(f"{cluster.base(1)}/metrics/events",
                                headers=cluster.headers("operator"),
                                json={"events": [{"type": "session_started", "session_id": s}
                                                 for s in sessions]})
        assert reply.status_code == 202, reply.text

        async def grown():
            return await active_sessions(socket) >= before + 3

        await eventually(grown, within=10, interval=0)
