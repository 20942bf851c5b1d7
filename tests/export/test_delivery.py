"""Delivery semantics (CONTRACT.md §10): outages, restarts, replicas, expiry, Retry-After."""

from __future__ import annotations

import dataclasses
import time
from collections import Counter

import grpc
import httpx
import pytest

from services.export.__main__ import create_server
from services.export.sinks import otlp
from tests.export.conftest import FAST, destinations, export_suite
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(120)


def _lines(prefix: str, count: int, **fields) -> list[dict]:
    return [{"level": "info", "service": "svc", "message": f"{prefix}-{i}", **fields}
            for i in range(count)]


async def _post(suite, lines: list[dict]) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        for start in range(0, len(lines), 500):
            r = await http.post(f"{suite.base}/logs", json={"logs": lines[start:start + 500]},
                                headers=suite.headers("operator"))
            assert r.status_code in (200, 201, 202), r.text


async def _status_entry(suite, name: str) -> dict | None:
    async with httpx.AsyncClient(timeout=10) as http:
        body = (await http.get(f"{suite.base}/status", headers=suite.headers())).json()
    return next((s for s in body["services"] if s["name"] == name), None)


@pytest.fixture
def fast_settings(make_settings):
    return make_settings(heartbeat_interval=0.5)


async def test_a_destination_down_for_a_while_gets_everything_when_it_returns(
        fast_settings, stopped_receiver):
    grpc_receiver = stopped_receiver
    sinks = {"otlp": otlp.Settings(endpoint=grpc_receiver.endpoint)}
    async with export_suite(fast_settings, sinks) as suite:
        expected = [line["message"] for line in _lines("outage", 1200)]
        await _post(suite, _lines("outage", 1200))

        async def degraded():
            entry = await _status_entry(suite, "export:otlp")
            return entry if entry and entry["status"] == "degraded" else None

        entry = await eventually(degraded, within=20)
        assert entry["details"]["sent"] == 0 and entry["details"]["last_error"]
        assert entry["details"]["backlog"] >= 1 or entry["details"]["position"] == 0
        state = (await destinations(suite))["otlp"]
        assert state.status == "degraded" and state.HasField("failing_since_time")

        await grpc_receiver.up()
        received = grpc_receiver.received
        await eventually(lambda: len(received.logs) >= 1200, within=30)
        assert set(received.bodies()) == set(expected)
        state = await eventually(
            lambda: _sent(suite, 1200), within=10)
        assert state.status == "running" and state.backlog == 0 and state.skipped == 0


async def _sent(suite, count: int):
    state = (await destinations(suite))["otlp"]
    return state if state.sent == count else None


@pytest.mark.parametrize(("refusing", "duplicates_at_most"), [
    # Stopped while the receiver refuses: only the batch being retried may come twice.
    (True, 50),
    # Stopped while it accepts: positions are saved every half second while a backlog
    # ships, and the stop saves the last acknowledged one, so only the two batches in
    # flight may come twice.
    (False, 2 * 50)], ids=["while-refused", "while-accepted"])
async def test_a_restart_mid_stream_resumes_without_loss(fast_settings, grpc_receiver, refusing,
                                                         duplicates_at_most):
    sinks = {"otlp": otlp.Settings(endpoint=grpc_receiver.endpoint)}
    small = dataclasses.replace(FAST, read_page=50)
    async with export_suite(fast_settings, sinks, small) as suite:
        expected = [line["message"] for line in _lines("restart", 6000)]
        await suite.stop("export")
        await _post(suite, _lines("restart", 6000))
        await suite.start("export")
        received = grpc_receiver.received

        def midway() -> bool:
            if len(received.logs) < (200 if refusing else 1000):
                return False
            if refusing:
                # The receiver runs on this loop: from here on it refuses every export, so
                # the stop below lands mid-stream however fast the export goes.
                grpc_receiver.fail_logs = [grpc.StatusCode.UNAVAILABLE] * 1_000_000
            return True

        await eventually(midway, within=20, interval=0.01)
        await suite.stop("export")
        stopped_at = len(received.logs)
        assert stopped_at < 6000, "the export finished before it could be restarted"
        grpc_receiver.fail_logs = []
        await suite.start("export")
        await eventually(lambda: set(received.bodies()) == set(expected), within=60)
        # At least once: only what was in flight at the stop may come twice.
        duplicates = sum(n - 1 for n in Counter(received.bodies()).values())
        assert duplicates <= duplicates_at_most, duplicates


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request) -> dict:
    """Suite settings of the store: SQLite, or PostgreSQL shared as it is across hosts."""
    if request.param == "sqlite":
        return {}
    return {"store_url": request.getfixturevalue("postgres_url")}


async def test_two_replicas_send_each_entry_once(make_settings, grpc_receiver, store):
    extra = store
    sinks = {"otlp": otlp.Settings(endpoint=grpc_receiver.endpoint)}
    async with export_suite(make_settings(heartbeat_interval=0.5, **extra), sinks) as suite:
        second = await create_server(suite.settings, address="127.0.0.1:0",
                                     export_settings=FAST, sink_settings=sinks)
        async with second:
            for round_ in range(3):
                await _post(suite, _lines(f"replicas{round_}", 400))
            received = grpc_receiver.received
            await eventually(lambda: len(received.logs) >= 1200, within=30)
            await eventually(lambda: _sent(suite, 1200), within=10)
            counts = Counter(received.bodies())
            assert len(counts) == 1200 and set(counts.values()) == {1}
            holders = {d.holder for d in (await destinations(suite)).values()}
            assert len(holders) == 1
            async def listed():
                entry = await _status_entry(suite, "export:otlp")
                return entry if entry and entry["details"]["sent"] == 1200 else None

            entry = await eventually(listed, within=10)
            assert entry["status"] == "running" and entry["details"]["backlog"] == 0


async def test_entries_beyond_max_age_are_skipped_and_counted(fast_settings, grpc_receiver):
    sinks = {"otlp": otlp.Settings(endpoint=grpc_receiver.endpoint)}
    hour = dataclasses.replace(FAST, max_age=3600.0)
    old = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 7200))
    async with export_suite(fast_settings, sinks, hour) as suite:
        await _post(suite, [*_lines("old", 30, timestamp=old), *_lines("new", 20)])
        received = grpc_receiver.received
        await eventually(lambda: len(received.logs) >= 20, within=15)

        async def counted():
            state = (await destinations(suite))["otlp"]
            return state if state.skipped == 30 and state.sent == 20 else None

        await eventually(counted, within=10)
        assert sorted(received.bodies()) == sorted(f"new-{i}" for i in range(20))
        async def listed():
            entry = await _status_entry(suite, "export:otlp")
            return entry if entry and entry["details"]["skipped"] == 30 else None

        await eventually(listed, within=10)


async def test_retry_after_and_429_are_honoured(fast_settings, http_receiver):
    http_receiver.fail_logs = [(429, "1"), (503, None)]
    sinks = {"otlp": otlp.Settings(endpoint=http_receiver.endpoint, protocol="http/protobuf")}
    async with export_suite(fast_settings, sinks) as suite:
        started = time.monotonic()
        await _post(suite, _lines("throttled", 10))
        received = http_receiver.received
        await eventually(lambda: len(received.logs) >= 10, within=20)
        # The 429 asked for a second: the next attempt came no sooner.
        assert time.monotonic() - started >= 1.0
        assert sorted(received.bodies()) == sorted(f"throttled-{i}" for i in range(10))
        state = (await destinations(suite))["otlp"]
        assert state.sent == 10 and state.failed == 0
