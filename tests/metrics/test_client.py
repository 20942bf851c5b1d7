"""The SDK's EventRecorder: its client side against grpc_testing, then a real server."""

from __future__ import annotations

import asyncio
import threading
import time

import grpc
import grpc_testing
import pytest

from botmon.client import EventRecorder
from botmon.metrics.v1 import metrics_pb2, metrics_service_pb2
from tests.conftest import api_token

SERVICE = metrics_service_pb2.DESCRIPTOR.services_by_name["MetricsService"]
RECORD = SERVICE.methods_by_name["RecordEvents"]


@pytest.fixture
def channel():
    return grpc_testing.channel([SERVICE], grpc_testing.strict_real_time())


def answer(channel, code=grpc.StatusCode.OK, errors=()):
    """Serve one RecordEvents call; returns its request."""
    _, request, rpc = channel.take_unary_unary(RECORD)
    reply = metrics_service_pb2.RecordEventsResponse(
        accepted=len(request.events) - len(errors),
        errors=[metrics_pb2.EventError(index=i, message="bad") for i in errors])
    rpc.terminate(reply, (), code, "" if code == grpc.StatusCode.OK else "down")
    return request


def test_events_are_batched_and_counted(channel):
    recorder = EventRecorder(channel=channel, service="web", batch_size=3, flush_interval=5)
    recorder.record_request("GET", "/chat", 200, 12.5, bytes=100)
    recorder.session_started("s1")
    recorder.conversation_completed("c1", 9)
    request = answer(channel, errors=(1,))
    assert [e.type for e in request.events] == ["request", "session_started",
                                                "conversation_completed"]
    first = request.events[0]
    assert (first.method, first.route, first.status, first.duration_ms, first.bytes,
            first.service) == ("GET", "/chat", 200, 12.5, 100, "web")
    assert abs(first.timestamp.ToNanoseconds() / 1e9 - time.time()) < 5
    assert request.events[2].messages == 9
    assert recorder.flush(2)
    stats = recorder.stats
    assert (stats.sent, stats.rejected, stats.dropped, stats.buffered) == (2, 1, 0, 0)
    recorder.close(1)


def test_unreachable_service_drops_and_counts(channel):
    recorder = EventRecorder(channel=channel, batch_size=2, flush_interval=5)
    recorder.session_started("a")
    recorder.session_ended("a")
    answer(channel, grpc.StatusCode.UNAVAILABLE)
    assert recorder.flush(2)
    assert (recorder.stats.sent, recorder.stats.dropped) == (0, 2)
    recorder.close(1)


def test_recording_never_blocks_nor_raises(channel):
    recorder = EventRecorder(channel=channel, batch_size=1000, max_buffer=5, flush_interval=60)
    started = time.monotonic()
    for i in range(50):
        recorder.record_request("GET", "/x", 200, float(i))
    recorder.record_request("GET", "/x", "not a status", 1.0)  # wrong type: counted, no raise
    assert time.monotonic() - started < 0.5
    assert (recorder.stats.buffered, recorder.stats.dropped) == (5, 46)
    # close() flushes the buffer with a deadline.
    closer = threading.Thread(target=recorder.close, args=(5,))
    closer.start()
    request = answer(channel)
    closer.join(5)
    assert len(request.events) == 5
    assert recorder.stats.sent == 5


async def test_against_the_real_service(start_metrics):
    async with start_metrics() as (server, stub):
        def use() -> EventRecorder:
            recorder = EventRecorder(f"127.0.0.1:{server.port}", service="web", batch_size=100,
                                     flush_interval=0.1, token=api_token(server.settings))
            for i in range(250):
                recorder.record_request("POST", "/chat", 200 if i % 5 else 500, 10.0 + i)
            recorder.session_started("s1")
            recorder.record_request("GET", "/x", 99, 1.0)  # refused by the service
            recorder.close(5)
            return recorder

        recorder = await asyncio.to_thread(use)
        app = (await stub.GetApplicationMetrics(
            metrics_service_pb2.GetApplicationMetricsRequest())).application
    assert (recorder.stats.sent, recorder.stats.rejected, recorder.stats.dropped) == (251, 1, 0)
    assert app.requests.total == 250 and app.sessions.active == 1
