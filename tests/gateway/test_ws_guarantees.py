"""What the README promises of the WebSocket bridges: their rate classes, and a client that
falls behind gets the latest data with a dropped count — against fakes and the real services."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import httpx
import pytest
import websockets

from botmon.runtime.config import Rate
from gateway.ws import QUEUE_SIZE
from services.logs.config import LogsSettings
from tests.gateway.fakes import RecordingLogs, RecordingMetrics
from tests.harness import Suite


def connect(suite, path: str, **kwargs):
    return websockets.connect(f"{suite.ws_url}{path}", additional_headers=suite.headers(),
                              open_timeout=5, close_timeout=2, **kwargs)


async def recv(ws, seconds: float = 5) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), seconds))


@pytest.mark.parametrize(("stream", "rate_class"), [("metrics", "metrics"), ("logs", "logs")])
async def test_each_socket_counts_against_its_streams_class(make_settings, stream, rate_class):
    """Opening a socket spends the class's budget: the third of two allowed is refused 429."""
    limits = {"metrics": Rate(1000, 60), "logs": Rate(1000, 60), rate_class: Rate(2, 60)}
    settings = make_settings(rate_limits={**make_settings().rate_limits, **limits})
    servicers = {"metrics": RecordingMetrics(), "logs": RecordingLogs()}
    async with Suite(settings, components=(), servicers=servicers, rate_limited=True) as suite:
        async with connect(suite, f"/ws/{stream}"), connect(suite, f"/ws/{stream}"):
            with pytest.raises(websockets.InvalidStatus) as refused:
                async with connect(suite, f"/ws/{stream}"):
                    pass
        response = refused.value.response
        assert response.status_code == 429
        assert int(response.headers["Retry-After"]) > 0
        assert response.headers["X-RateLimit-Limit"] == "2"
        # The other stream's class was not spent.
        other = "logs" if stream == "metrics" else "metrics"
        async with connect(suite, f"/ws/{other}") as ws:
            assert ws.response.status_code == 101


async def test_a_client_behind_loses_its_oldest_messages_not_its_newest(make_settings):
    """A tick of 500 updates arrives at once, more than a socket's queue holds: the client
    gets the newest QUEUE_SIZE of them, and the next message counts the rest as dropped."""
    metrics = RecordingMetrics()
    metrics.burst = 500  # updates metric_0 … metric_499 each tick, valued by the tick number
    async with Suite(make_settings(), components=(), servicers={"metrics": metrics}) as suite:
        async with connect(suite, "/ws/metrics") as ws:
            frames = [await recv(ws) for _ in range(2 * QUEUE_SIZE)]
    first_tick = [f for f in frames if f["value"] == frames[0]["value"]]
    lost = 500 - QUEUE_SIZE
    assert [f["metric"] for f in first_tick] == [f"metric_{i}" for i in range(lost, 500)]
    assert {f["dropped"] for f in first_tick} == {lost}
    second_tick = frames[len(first_tick):]
    assert second_tick[0]["metric"] == f"metric_{lost}"
    assert second_tick[0]["dropped"] == 2 * lost


TAIL_BUFFER = 100


@pytest.fixture
async def real_suite(make_settings):
    settings = make_settings(heartbeat_interval=60.0)
    logs = dataclasses.replace(LogsSettings(), tail_buffer=TAIL_BUFFER)
    async with Suite(settings, components=("metrics", "logs"),
                     options={"logs": {"logs_settings": logs}}) as suite:
        yield suite


async def test_real_metrics_stream_filters_and_paces(real_suite):
    async with connect(real_suite, "/ws/metrics?metrics=cpu_usage,memory_usage&interval=1") as ws:
        frames = [await recv(ws, 10) for _ in range(4)]
    assert {f["metric"] for f in frames} == {"cpu_usage", "memory_usage"}
    assert all(f["type"] == "metric_update" and isinstance(f["value"], float) for f in frames)
    # One update of each name per tick: two ticks, each with its own timestamp.
    assert len({f["timestamp"] for f in frames}) == 2


async def test_real_log_tail_filters_and_keeps_the_newest_when_behind(real_suite):
    """TailLogs itself: only matching entries, and a burst larger than the tail's buffer
    (BOTMON_LOG_TAIL_BUFFER) reaches the client as its newest entries with a dropped count."""
    suite = real_suite
    async with connect(suite, "/ws/logs?level=warn&service=checkout") as ws:
        await asyncio.sleep(0.3)  # the tail is open before anything is written
        logs = [{"level": level, "service": service, "message": f"{i}"}
                for i in range(300)
                for level, service in (("error", "checkout"), ("info", "checkout"),
                                       ("error", "search"))]
        async with httpx.AsyncClient(timeout=30) as http:
            r = await http.post(f"{suite.base}/logs", json={"logs": logs},
                                headers=suite.headers("operator"))
        assert r.status_code == 202, r.text
        frames = [await recv(ws, 10) for _ in range(TAIL_BUFFER)]
        with pytest.raises(TimeoutError):
            await recv(ws, 1)  # nothing more: the rest was dropped, the rest filtered out
    assert all(f["type"] == "log" for f in frames)
    entries = [f["log"] for f in frames]
    assert all(e["service"] == "checkout" and e["level"] == "error" for e in entries)
    assert [e["message"] for e in entries] == [str(i) for i in range(300 - TAIL_BUFFER, 300)]
    assert frames[0]["dropped"] == 300 - TAIL_BUFFER
