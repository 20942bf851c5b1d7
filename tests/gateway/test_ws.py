"""WebSocket bridges: /ws/metrics onto StreamMetrics, /ws/logs onto TailLogs."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
import websockets

from botmon.logs.v1 import log_entry_pb2, logs_service_pb2
from tests.gateway.fakes import RecordingLogs, RecordingMetrics
from tests.harness import Suite


@pytest.fixture
async def suite(make_settings):
    servicers = {"metrics": RecordingMetrics(), "logs": RecordingLogs()}
    async with Suite(make_settings(), components=(), servicers=servicers) as suite:
        yield suite


def connect(suite, path: str, **kwargs):
    return websockets.connect(f"{suite.ws_url}{path}", additional_headers=suite.headers(),
                              open_timeout=5, close_timeout=2, **kwargs)


async def recv(ws) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), 5))


async def test_metric_updates_with_filter_and_interval(suite):
    async with connect(suite, "/ws/metrics?metrics=cpu_usage,disk_usage&interval=2") as ws:
        first, second = await recv(ws), await recv(ws)
    assert first == {"type": "metric_update", "metric": "cpu_usage", "value": first["value"],
                     "timestamp": "2024-01-15T10:00:00Z"}
    assert second["metric"] == "disk_usage"
    request, metadata = suite.servicers["metrics"].last("StreamMetrics")
    assert list(request.metrics) == ["cpu_usage", "disk_usage"]
    assert request.interval_seconds == 2.0
    assert metadata["x-botmon-subject"] == "test-viewer"


async def test_closing_the_socket_cancels_the_stream(suite):
    metrics = suite.servicers["metrics"]
    async with connect(suite, "/api/v1/monitoring/ws/metrics") as ws:
        await recv(ws)
        assert not metrics.stream_cancelled.is_set()
    await asyncio.wait_for(metrics.stream_cancelled.wait(), 5)


@pytest.mark.parametrize("query", ["interval=0.5", "interval=soon", "colour=red"])
async def test_bad_parameters_close_with_1008_after_a_json_error(suite, query):
    async with connect(suite, f"/ws/metrics?{query}") as ws:
        frame = await recv(ws)
        assert frame["type"] == "error"
        assert frame["error"]["status"] == "INVALID_ARGUMENT" and frame["error"]["message"]
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd.code == 1008


async def test_backend_down_closes_with_an_error_frame(suite):
    await suite.stop("metrics")
    async with connect(suite, "/ws/metrics") as ws:
        frame = await recv(ws)
        assert frame["error"]["status"] == "UNAVAILABLE"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd.code == 1013


async def test_log_tail_with_filters(suite):
    logs = suite.servicers["logs"]
    path = "/ws/logs?level=warn&service=web&q=timeout&metadata.user_id=u1"
    async with connect(suite, path) as ws:
        for _ in range(100):
            if any(name == "TailLogs" for name, *_ in logs.calls):
                break
            await asyncio.sleep(0.02)
        request, _ = logs.last("TailLogs")
        assert (request.level, request.service, request.q) == ("warn", "web", "timeout")
        assert dict(request.metadata) == {"user_id": "u1"}
        entry = log_entry_pb2.LogEntry(level="error", service="web", message="db timeout", id=7)
        entry.timestamp.FromSeconds(1705312800)
        logs.tail_updates.put_nowait(logs_service_pb2.TailLogsResponse(logs=[entry], dropped=3))
        frame = await recv(ws)
    assert frame == {"type": "log", "dropped": 3, "log": {
        "timestamp": "2024-01-15T10:00:00Z", "level": "error", "service": "web",
        "message": "db timeout", "metadata": None, "id": 7}}
    await asyncio.wait_for(logs.tail_cancelled.wait(), 5)


async def test_log_tail_rejects_unknown_filters(suite):
    async with connect(suite, "/api/v1/monitoring/ws/logs?colour=red") as ws:
        frame = await recv(ws)
        assert "colour" in frame["error"]["message"]


async def test_slow_reader_gets_oldest_dropped_and_counted(suite):
    metrics = suite.servicers["metrics"]
    metrics.burst = 500
    # A tiny receive buffer makes the gateway's sends back up quickly.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", suite.port))
    async with websockets.connect(f"{suite.ws_url}/ws/metrics", sock=sock, max_queue=1,
                                  additional_headers=suite.headers(), open_timeout=5,
                                  close_timeout=0.5) as ws:
        await asyncio.sleep(0.5)
        # A fast reader on another socket is not held up meanwhile.
        async with connect(suite, "/ws/metrics") as fast:
            assert (await recv(fast))["type"] == "metric_update"
        dropped = 0
        for _ in range(50_000):
            frame = await recv(ws)
            if frame.get("dropped"):
                dropped = frame["dropped"]
                break
    assert dropped > 0
