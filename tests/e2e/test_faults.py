"""Fault tests: replicas killed under load, PostgreSQL and Redis outages, a hanging receiver.

The cluster here runs on a PostgreSQL and a Redis of its own (``servers.py``),
so stopping them disturbs nobody else. Each test leaves the cluster whole again.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid

import httpx
import pytest
import websockets

from botmon.logs.v1 import log_entry_pb2, logs_service_pb2, logs_service_pb2_grpc
from tests.e2e.cluster import Cluster, internal_channel
from tests.e2e.environment import BUDGET_SUBJECTS, cluster_env
from tests.e2e.servers import OwnPostgres, OwnRedis
from tests.waiting import eventually

DEADLINE = 2.0


def _tag() -> str:
    return f"e2e-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def own_postgres():
    server = OwnPostgres()
    yield server
    server.close()


@pytest.fixture(scope="module")
def own_redis():
    server = OwnRedis()
    yield server
    server.close()


@pytest.fixture(scope="module")
def fault_cluster(tmp_path_factory, own_postgres, own_redis):
    running = Cluster(tmp_path_factory.mktemp("faults"), store_url=own_postgres.url,
                      redis_url=own_redis.url, extra_tokens=BUDGET_SUBJECTS,
                      env=cluster_env(BOTMON_GRPC_DEADLINE=str(DEADLINE),
                                      BOTMON_PROBE_TIMEOUT="0.5"),
                      # Gateway 0 keeps the default (fail open), gateway 1 refuses instead.
                      replica_env={("gateway", 1): {"BOTMON_RATE_LIMIT_FAIL": "closed"}})
    running.start()
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def _whole_cluster_after(request):
    """Every replica runs again after a fault test, whatever the test did."""
    yield
    if "fault_cluster" in request.fixturenames:
        running: Cluster = request.getfixturevalue("fault_cluster")
        for (component, index), replica in running.replicas.items():
            if not replica.running:
                running.restart(component, index)


#: Concurrent senders of the load loops.
WORKERS = 4


async def _under_load(send, fault, *, workers: int = WORKERS, before: float = 1.0,
                      after: float = 2.0) -> list[tuple[int, object]]:
    """Call ``send(i)`` from ``workers`` loops; run ``fault()`` (blocking) ``before`` s in."""
    results: list[tuple[int, object]] = []
    numbers = itertools.count()
    done = asyncio.Event()

    async def worker() -> None:
        while not done.is_set():
            i = next(numbers)
            try:
                results.append((i, await send(i)))
            except httpx.HTTPError as exc:
                results.append((i, exc))

    tasks = [asyncio.create_task(worker()) for _ in range(workers)]
    await asyncio.sleep(before)
    await asyncio.to_thread(fault)
    await asyncio.sleep(after)
    done.set()
    await asyncio.gather(*tasks)
    return results


async def _restart(cluster: Cluster, component: str, index: int) -> None:
    await asyncio.to_thread(cluster.restart, component, index)


# --------------------------------------------------------------- a hanging receiver


async def test_a_hanging_receiver_does_not_hold_up_the_others(fault_cluster, http, receiver):
    cluster = fault_cluster
    receiver.hang.add("/hang")
    names = [_tag().replace("-", "_") for _ in range(2)]
    try:
        started = time.monotonic()
        for name, notify in zip(names, ({"webhook": receiver.url("/hang"),
                                         "slack": receiver.url("/slack")},
                                        {"webhook": receiver.url("/other")}), strict=True):
            rule = {"name": name, "type": "threshold", "metric": "memory.usage_percent",
                    "condition": "greater_than", "threshold": 0, "duration_seconds": 0,
                    "severity": "critical", "notify": notify}
            reply = await http.post(f"{cluster.base(0)}/alerts/configure", json=rule,
                                    headers=cluster.headers("operator"))
            assert reply.status_code == 201, reply.text
        await eventually(lambda: receiver.at("/hang"), within=10)
        # The same rule's other channel and another rule's channel go out while /hang hangs.
        await eventually(lambda: receiver.at("/slack") and receiver.at("/other"), within=10)
        assert time.monotonic() - started < 10
        assert not any(r.answered for r in receiver.at("/hang"))
    finally:
        for name in names:
            await http.delete(f"{cluster.base(0)}/alerts/rules/{name}",
                              headers=cluster.headers("operator"))


# --------------------------------------------------------------- replicas killed


async def test_killing_a_logs_replica_under_load_loses_no_acknowledged_entry(fault_cluster, http):
    cluster = fault_cluster
    service = _tag()

    async def send(i: int) -> int:
        reply = await http.post(f"{cluster.base(i % 2)}/logs",
                                headers=cluster.headers("operator"),
                                json={"logs": [{"level": "info", "service": service,
                                                "message": f"line {i}"}]})
        return reply.status_code

    try:
        results = await _under_load(send, lambda: cluster.kill("logs", 0))
    finally:
        await _restart(cluster, "logs", 0)
    # The other replica was up throughout: every request fails over, none is refused.
    assert all(status == 202 for _, status in results), \
        sorted({repr(status) for _, status in results})
    acknowledged = {f"line {i}" for i, status in results if status == 202}
    stored: set[str] = set()
    params = {"service": service, "limit": 1000}
    while True:  # A fast machine acknowledges more than one page.
        reply = await http.get(f"{cluster.base(1)}/logs", params=params,
                               headers=cluster.headers())
        assert reply.status_code == 200, reply.text
        page = reply.json()
        stored.update(entry["message"] for entry in page["logs"])
        if not page["next_cursor"]:
            break
        params["cursor"] = page["next_cursor"]
    assert acknowledged <= stored, sorted(acknowledged - stored)
    assert len(acknowledged) >= 20  # the load was real


async def _requests_total(http: httpx.AsyncClient, cluster: Cluster) -> int:
    reply = await http.get(f"{cluster.base(0)}/metrics/application", headers=cluster.headers())
    assert reply.status_code == 200, reply.text
    return reply.json()["application"]["requests"]["total"]


async def test_killing_a_metrics_replica_under_load_loses_no_acknowledged_event(fault_cluster,
                                                                                http):
    cluster = fault_cluster
    before = await _requests_total(http, cluster)

    async def send(i: int) -> int:
        reply = await http.post(f"{cluster.base(i % 2)}/metrics/events",
                                headers=cluster.headers("operator"),
                                json={"events": [{"type": "request", "method": "GET",
                                                  "route": "/e2e", "status": 200,
                                                  "duration_ms": 12.5}]})
        return reply.status_code

    try:
        results = await _under_load(send, lambda: cluster.kill("metrics", 1))
    finally:
        await _restart(cluster, "metrics", 1)
    assert all(status == 202 for _, status in results), \
        sorted({repr(status) for _, status in results})
    acknowledged = sum(1 for _, status in results if status == 202)
    assert acknowledged >= 20
    # Every acknowledged event is counted. Delivery across a replica's death is at least
    # once: a write the killed replica committed but never answered is retried on the
    # other one, so at most the calls in flight at the kill (one per worker) count twice.
    await eventually(lambda: _at_least(http, cluster, before + acknowledged), within=15,
                     interval=0.5)
    assert await _requests_total(http, cluster) <= before + len(results) + WORKERS


async def _at_least(http, cluster, expected: int) -> bool:
    return await _requests_total(http, cluster) >= expected


async def test_killing_the_leading_alerts_replica_hands_evaluation_over(fault_cluster, http,
                                                                       receiver):
    cluster = fault_cluster

    async def leader_port() -> int | None:
        status = (await http.get(f"{cluster.base(0)}/status", headers=cluster.headers())).json()
        ports = [s["port"] for s in status["services"] if s["name"] == "alerts"
                 and s["status"] == "running" and (s.get("details") or {}).get("leader")]
        return ports[0] if len(ports) == 1 else None

    port = await eventually(leader_port, within=10, interval=0.3)
    index = next(i for i in range(2) if cluster.ports[("alerts", i)] == port)
    name = _tag().replace("-", "_")
    try:
        await asyncio.to_thread(cluster.kill, "alerts", index)
        rule = {"name": name, "type": "threshold", "metric": "memory.usage_percent",
                "condition": "greater_than", "threshold": 0, "duration_seconds": 0,
                "severity": "warning", "notify": {"webhook": receiver.url("/hook")}}
        reply = await http.post(f"{cluster.base(1)}/alerts/configure", json=rule,
                                headers=cluster.headers("operator"))
        assert reply.status_code == 201, reply.text
        # The survivor takes the lock once PostgreSQL sees the dead session go.
        await eventually(lambda: receiver.at("/hook"), within=15)
        survivor = cluster.ports[("alerts", 1 - index)]

        async def survivor_leads() -> bool:
            # The dead replica stays listed as running until its heartbeat lapses.
            return await leader_port() == survivor

        await eventually(survivor_leads, within=10, interval=0.3)
    finally:
        await _restart(cluster, "alerts", index)
        await http.delete(f"{cluster.base(0)}/alerts/rules/{name}",
                          headers=cluster.headers("operator"))


async def test_killing_a_health_replica_keeps_health_answering(fault_cluster, http):
    cluster = fault_cluster

    async def send(i: int) -> int:
        reply = await http.get(f"{cluster.base(i % 2)}/health/detailed",
                               headers=cluster.headers())
        return reply.status_code

    try:
        results = await _under_load(send, lambda: cluster.kill("health", 0), workers=2)
    finally:
        await _restart(cluster, "health", 0)
    assert all(status == 200 for _, status in results), \
        sorted({repr(status) for _, status in results})
    for gateway in range(2):
        reply = await http.get(f"{cluster.base(gateway)}/health")
        assert reply.status_code == 200, reply.text


async def test_killing_a_gateway_leaves_the_other_serving(fault_cluster, http):
    cluster = fault_cluster
    try:
        await asyncio.to_thread(cluster.kill, "gateway", 1)
        reply = await http.get(f"{cluster.base(0)}/logs", headers=cluster.headers(),
                               params={"limit": 1})
        assert reply.status_code == 200, reply.text
        with pytest.raises(httpx.ConnectError):
            await http.get(f"{cluster.base(1)}/health/live")
    finally:
        await _restart(cluster, "gateway", 1)
    assert (await http.get(f"{cluster.base(1)}/health/ready")).status_code == 200


async def test_503_naming_the_service_only_while_no_replica_is_up(fault_cluster, http):
    cluster = fault_cluster
    body = {"logs": [{"level": "info", "service": _tag(), "message": "no replica"}]}
    try:
        await asyncio.to_thread(cluster.kill, "logs", 0)
        one_left = await http.post(f"{cluster.base(0)}/logs", json=body,
                                   headers=cluster.headers("operator"))
        assert one_left.status_code == 202, one_left.text
        await asyncio.to_thread(cluster.kill, "logs", 1)
        started = time.monotonic()
        down = await http.post(f"{cluster.base(0)}/logs", json=body,
                               headers=cluster.headers("operator"))
        assert time.monotonic() - started < DEADLINE + 2  # an answer, not a hang
        assert down.status_code == 503, down.text
        error = down.json()["error"]
        assert error["status"] == "UNAVAILABLE" and "logs" in error["message"]


        async def not_ready() -> list[str]:
            # Readiness is cached for a second, so it may take that long to notice.
            reply = await http.get(f"{cluster.base(1)}/health/ready")
            return reply.status_code == 503 and reply.json()["not_ready"]

        assert await eventually(not_ready, within=5, interval=0.2) == ["logs"]
    finally:
        await _restart(cluster, "logs", 1)

    async def accepted() -> bool:
        reply = await http.post(f"{cluster.base(0)}/logs", json=body,
                                headers=cluster.headers("operator"))
        return reply.status_code == 202

    # Back as soon as the gateway's channel reconnects: within its longest reconnect
    # backoff (2 s, botmon/runtime/channels.py) plus a second of slack.
    await eventually(accepted, within=3, interval=0.1)


# --------------------------------------------------------------- PostgreSQL outage


async def test_postgres_outage_gives_unhealthy_and_503_then_recovers(fault_cluster, own_postgres,
                                                                     http):
    cluster = fault_cluster
    service = _tag()
    operator = cluster.headers("operator")

    async def ingest(gateway: int, message: str) -> httpx.Response:
        return await http.post(f"{cluster.base(gateway)}/logs", headers=operator,
                               json={"logs": [{"level": "error", "service": service,
                                               "message": message}]})

    async def unhealthy() -> bool:
        reply = await http.get(f"{cluster.base(0)}/health")
        return reply.status_code == 503 and reply.json()["status"] == "unhealthy"

    await asyncio.to_thread(own_postgres.stop)
    try:
        await eventually(unhealthy, within=10, interval=0.3)


        async def database_unhealthy() -> bool:
            # Each health replica probes on its own round; both must have noticed.
            replies = [await http.get(f"{cluster.base(i % 2)}/health/detailed",
                                      headers=cluster.headers()) for i in range(4)]
            return all(r.json()["components"]["database"]["status"] == "unhealthy"
                       for r in replies)

        await eventually(database_unhealthy, within=10, interval=0.3)
        for attempt in range(4):
            reply = await ingest(attempt % 2, f"during outage {attempt}")
            assert reply.status_code == 503, reply.text
            assert reply.json()["error"]["status"] == "UNAVAILABLE"
        events = await http.post(f"{cluster.base(0)}/metrics/events", headers=operator,
                                 json={"events": [{"type": "session_started",
                                                   "session_id": service}]})
        assert events.status_code == 503, events.text
        loki = await http.post(f"{cluster.url(1)}/loki/api/v1/push", headers=operator,
                               json={"streams": [{"stream": {"service": service},
                                                  "values": [[str(time.time_ns()), "loki"]]}]})
        assert loki.status_code == 503, loki.text
        # Reads fail the same way: unavailable, not an internal error.
        reads = {path: await http.get(f"{cluster.base(0)}{path}", headers=cluster.headers())
                 for path in ("/logs", "/errors/summary", "/alerts", "/alerts/rules",
                              "/metrics/performance")}

        # The application figures are served from a snapshot while it is younger than
        # BOTMON_METRICS_SNAPSHOT_TTL (5 s); after that they are unavailable too.
        async def application_unavailable():
            reply = await http.get(f"{cluster.base(0)}/metrics/application",
                                   headers=cluster.headers())
            return reply if reply.status_code != 200 else None

        reads["/metrics/application"] = await eventually(application_unavailable, within=15,
                                                         interval=0.5)
        # Checked last, so that recovery is exercised whatever the reads did.
        failed_reads = {path: f"{r.status_code} {r.text[:200]}"
                        for path, r in reads.items() if r.status_code != 503}
    finally:
        await asyncio.to_thread(own_postgres.start)

    # Recovery without restarting anything: both gateways, every logs replica.
    async def recovered() -> bool:
        replies = [await ingest(i % 2, f"after outage {i}") for i in range(4)]
        return all(r.status_code == 202 for r in replies)

    await eventually(recovered, within=20, interval=0.5)
    await eventually(lambda: _status_is(http, cluster, 200), within=15, interval=0.3)
    listed = await http.get(f"{cluster.base(1)}/logs", params={"service": service, "limit": 100},
                            headers=cluster.headers())
    messages = {e["message"] for e in listed.json()["logs"]}
    assert not any(m.startswith("during outage") for m in messages)
    assert {f"after outage {i}" for i in range(4)} <= messages
    assert not failed_reads, f"reads during the outage did not answer 503: {failed_reads}"


async def _status_is(http, cluster, code: int) -> bool:
    return (await http.get(f"{cluster.base(0)}/health")).status_code == code


# --------------------------------------------------------------- Redis outage


async def _write_directly(cluster: Cluster, index: int, service: str, message: str) -> None:
    """Write one entry through logs replica ``index`` itself."""
    async with internal_channel(cluster.address("logs", index)) as channel:
        reply = await logs_service_pb2_grpc.LogsServiceStub(channel).WriteLogs(
            logs_service_pb2.WriteLogsRequest(logs=[log_entry_pb2.LogEntry(
                level="info", service=service, message=message)]), timeout=5)
    assert reply.accepted == 1


async def _drain(socket, seconds: float) -> set[str]:
    """Messages of the ``log`` frames received within ``seconds``."""
    got: set[str] = set()
    try:
        async with asyncio.timeout(seconds):
            while True:
                frame = json.loads(await socket.recv())
                assert frame["type"] == "log", frame
                got.add(frame["log"]["message"])
    except TimeoutError:
        pass
    return got


async def _notes(http: httpx.AsyncClient, cluster: Cluster, gateway: int) -> list[str]:
    reply = await http.get(f"{cluster.base(gateway)}/health/detailed", headers=cluster.headers())
    return reply.json().get("notes", [])


async def test_redis_outage_fails_open_or_closed_and_degrades_fanout_then_recovers(
        fault_cluster, own_redis, http):
    cluster = fault_cluster
    headers = cluster.headers("budget-outage")
    for _ in range(20):
        assert (await http.get(f"{cluster.base(0)}/status", headers=headers)).status_code == 200
    assert (await http.get(f"{cluster.base(1)}/status", headers=headers)).status_code == 429

    service = _tag()
    url = f"{cluster.ws(0)}/ws/logs?service={service}&access_token={cluster.tokens['viewer']}"
    tails = [await websockets.connect(url, open_timeout=5) for _ in range(2)]
    # Checked last, so that recovery is exercised whatever these say.
    problems: list[str] = []
    try:
        await asyncio.sleep(0.5)
        await asyncio.to_thread(own_redis.stop)

        # Gateway 0 fails open (the default): the exhausted budget no longer refuses.
        allowed = await http.get(f"{cluster.base(0)}/status", headers=headers)
        assert allowed.status_code == 200, allowed.text
        assert any("fail-open" in note for note in await _notes(http, cluster, 0))
        assert "failing open until it answers" in cluster.log_text("gateway", 0)
        # Gateway 1 fails closed, as configured: refused, with when to retry.
        refused = await http.get(f"{cluster.base(1)}/status", headers=cluster.headers())
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["Retry-After"]) >= 1
        assert "failing closed until it answers" in cluster.log_text("gateway", 1)
        closed_notes = await _notes(http, cluster, 1)
        if not any("Redis" in note for note in closed_notes) or \
                any("let through" in note for note in closed_notes):
            problems.append(f"gateway 1 fails closed, yet /health/detailed notes say "
                            f"{closed_notes}")

        # Fan-out degrades to per replica: a tail sees exactly what its own replica wrote.
        written = {index: {f"outage r{index} {i}" for i in range(3)} for index in range(2)}
        await asyncio.sleep(1)  # the replicas notice their subscription is gone
        for index, messages in written.items():
            for message in sorted(messages):
                await _write_directly(cluster, index, service, message)
        for tail in tails:
            got = await _drain(tail, 2)
            assert got in (written[0], written[1]), (got, written)
    finally:
        await asyncio.to_thread(own_redis.start)

    try:
        # Back: every tail sees every replica's entries again, limits count again.
        async def fanout_back() -> bool:
            marker = _tag()
            for index in range(2):
                await _write_directly(cluster, index, service, f"{marker} r{index}")
            wanted = {f"{marker} r{index}" for index in range(2)}
            seen = [await _drain(tail, 1) for tail in tails]
            return all(wanted <= got for got in seen)

        await eventually(fanout_back, within=20, interval=0.2)

        async def counted() -> bool:
            reply = await http.get(f"{cluster.base(0)}/status", headers=headers)
            return reply.status_code == 200 and \
                int(reply.headers["X-RateLimit-Remaining"]) < 20

        await eventually(counted, within=10, interval=0.5)

        async def still_degraded() -> list[int]:
            """Gateways whose /health/detailed still says Redis is unreachable."""
            return [gateway for gateway in range(2)
                    if any("Redis" in note for note in await _notes(http, cluster, gateway))]

        # Gateway 1 has had no rate-limited request since Redis came back.
        try:
            await eventually(lambda: _empty(still_degraded()), within=5, interval=0.5)
        except AssertionError:
            problems.append(f"Redis is back, yet gateways {await still_degraded()} still say "
                            "it is unreachable in /health/detailed")
        assert not problems, problems
    finally:
        for tail in tails:
            await tail.close()


async def _empty(items) -> bool:
    return not await items
