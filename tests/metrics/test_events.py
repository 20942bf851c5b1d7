"""Event ingest: validation, partial success, client streaming, and what it feeds."""

from __future__ import annotations

import asyncio
import time

import grpc
import psutil
import pytest

from botmon.metrics.v1 import metrics_pb2
from botmon.metrics.v1 import metrics_service_pb2 as pb


def event(kind: str, ts: float | None = None, **fields) -> metrics_pb2.Event:
    e = metrics_pb2.Event(type=kind, **fields)
    if ts is not None:
        e.timestamp.FromNanoseconds(int(ts * 1e9))
    return e


def ok_request(**fields) -> metrics_pb2.Event:
    return event("request", **{"method": "GET", "route": "/x", "status": 200,
                               "duration_ms": 5.0, **fields})


@pytest.mark.parametrize(("bad", "complaint"), [
    (event("click"), "type: must be one of request, session_started"),
    (ok_request(status=99), "status: must be between 100 and 599, got 99"),
    (ok_request(status=600), "status: must be between 100 and 599, got 600"),
    (ok_request(duration_ms=-1.0), "duration_ms: must be between 0"),
    (ok_request(duration_ms=float("nan")), "duration_ms: must be between 0"),
    (ok_request(method=""), "method: required"),
    (ok_request(bytes=-5), "bytes: must be >= 0"),
    (ok_request(ts=time.time() + 3600), "timestamp: is more than 300 s in the future"),
    (ok_request(ts=time.time() - 8 * 86400), "timestamp: is older than the 7-day retention"),
    (event("session_started"), "session_id: required for session_started"),
    (event("session_ended", session_id="x" * 300), "session_id: required for session_ended"),
    (event("conversation_completed"), "conversation_id: required"),
    (event("conversation_completed", conversation_id="c", messages=-2), "messages: must be >= 0"),
])
async def test_invalid_events_are_reported_and_valid_ones_kept(start_metrics, tmp_path, bad,
                                                               complaint):
    async with start_metrics() as (_, stub):
        reply = await stub.RecordEvents(pb.RecordEventsRequest(events=[ok_request(), bad,
                                                                       ok_request()]))
        assert reply.accepted == 2
        assert [e.index for e in reply.errors] == [1]
        assert reply.errors[0].message.startswith("events[1].")
        assert complaint in reply.errors[0].message
        values = await stub.GetApplicationMetrics(pb.GetApplicationMetricsRequest())
        assert values.application.requests.total == 2


async def test_batches_that_cannot_be_stored_are_refused(start_metrics):
    async with start_metrics() as (_, stub):
        for events, complaint in [
            ([], "at least one event is required"),
            ([ok_request()] * 10_001, "at most 10000 events per batch; got 10001"),
            ([event("click"), ok_request(status=1)], "no event is valid: events[0].type"),
        ]:
            with pytest.raises(grpc.aio.AioRpcError) as failure:
                await stub.RecordEvents(pb.RecordEventsRequest(events=events))
            assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert complaint in failure.value.details()


async def test_client_streaming_counts_accepted_and_rejected(start_metrics, store_url):
    async def batches():
        for i in range(20):
            yield pb.StreamEventsRequest(events=[ok_request(duration_ms=float(j))
                                                 for j in range(500)] + [event("bad")])
            if i == 10:
                yield pb.StreamEventsRequest(events=[event("session_started", session_id="s")])

    async with start_metrics(store_url=store_url) as (_, stub):
        reply = await stub.StreamEvents(batches())
        assert (reply.accepted, reply.rejected) == (20 * 500 + 1, 20)
        app = (await stub.GetApplicationMetrics(pb.GetApplicationMetricsRequest())).application
        assert app.requests.total == 10_000
        assert app.sessions.active == 1


async def test_stream_with_an_oversized_message_fails_clearly(start_metrics):
    async def batches():
        yield pb.StreamEventsRequest(events=[ok_request()])
        yield pb.StreamEventsRequest(events=[])

    async with start_metrics() as (_, stub):
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await stub.StreamEvents(batches())
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "message at event 1: at least one event is required" in failure.value.details()


async def test_application_figures(start_metrics, store_url):
    now = time.time()
    events = [
        # Two requests in the last minute, one a server error.
        ok_request(ts=now - 10, duration_ms=100.0),
        ok_request(ts=now - 5, duration_ms=300.0, status=503),
        # Older than a minute: counts in the total and the 5-minute tail only.
        ok_request(ts=now - 200, duration_ms=50.0, status=404),
        # A session that ended after 10 minutes, one still going, one idle too long.
        event("session_started", now - 900, session_id="done"),
        event("session_ended", now - 300, session_id="done"),
        event("session_started", now - 60, session_id="live"),
        event("session_started", now - 7200, session_id="idle"),
        # A completed conversation of 12 messages, one of 4, one open.
        event("conversation_started", now - 500, conversation_id="c1"),
        event("conversation_completed", now - 100, conversation_id="c1", messages=12),
        event("conversation_completed", now - 50, conversation_id="c2", messages=4),
        event("conversation_started", now - 20, conversation_id="c3"),
    ]
    midnight = now - now % 86400

    def today(*times: float) -> int:
        """How many of ``times`` fall on today (UTC), whatever the time of day the test runs."""
        return sum(t >= midnight for t in times)

    async with start_metrics(store_url=store_url, session_idle_timeout=1800.0) as (_, stub):
        reply = await stub.RecordEvents(pb.RecordEventsRequest(events=events))
        assert reply.accepted == len(events)
        app = (await stub.GetApplicationMetrics(pb.GetApplicationMetricsRequest())).application
    # No health service here: botmon's own uptime, that of this process (events do not count).
    assert app.uptime_source == "botmon"
    assert abs(app.uptime_seconds - (time.time() - psutil.Process().create_time())) <= 5
    assert app.requests.total == 3
    assert app.requests.rate_per_second == round(2 / 60, 4)
    assert app.requests.average_latency_ms == 200.0
    # Of 50, 100 and 300 ms the value at rank floor(0.99 * 2) is 100 ms (1 % bound).
    assert abs(app.requests.p99_latency_ms - 100.0) <= 1.0
    assert app.requests.error_rate == round(1 / 3, 6)
    assert (app.sessions.active, app.sessions.total_today) == (
        1, today(now - 900, now - 60, now - 7200))
    # "done" lasted 10 minutes; "idle" counts as ended at its last event (0 minutes).
    assert app.sessions.average_duration_minutes == 5.0
    assert (app.conversations.active, app.conversations.completed_today) == (
        1, today(now - 100, now - 50))
    assert app.conversations.average_messages == 8.0
    # No logs service: errors are the 5xx requests, and the response says so.
    assert app.errors.source == "requests"
    assert (app.errors.total, app.errors.rate_per_hour) == (1, 1.0)
    assert abs(app.errors.last_error.ToNanoseconds() / 1e9 - (now - 5)) < 0.01


async def test_system_metrics_come_from_the_latest_sample(start_metrics, tmp_path):
    async with start_metrics(sample_interval=0.2) as (_, stub):
        first = await stub.GetSystemMetrics(pb.GetSystemMetricsRequest())
        # The next sample arrives in the background, without being asked for.
        for _ in range(20):
            second = await stub.GetSystemMetrics(pb.GetSystemMetricsRequest())
            if second.timestamp != first.timestamp:
                break
            await asyncio.sleep(0.05)
    system = second.system
    assert second.timestamp != first.timestamp
    assert 0.1 <= second.sample_period_seconds <= 1.0
    assert system.cpu.cores == psutil.cpu_count()
    assert len(system.cpu.load_average) == 3
    assert 0 <= system.cpu.usage_percent <= 100
    assert system.memory.total_gb == round(psutil.virtual_memory().total / 1e9, 3)
    disk = psutil.disk_usage(str(tmp_path))
    assert system.disk.total_gb == round(disk.total / 1e9, 3)
    assert abs(system.disk.usage_percent + system.disk.free_percent - 100) < 0.02
    assert system.network.bytes_received > 0


async def test_metric_values_name_every_numeric_field(start_metrics):
    async with start_metrics() as (_, stub):
        await stub.RecordEvents(pb.RecordEventsRequest(events=[ok_request(duration_ms=40.0)]))
        reply = await stub.GetMetricValues(pb.GetMetricValuesRequest())
    values = dict(reply.values)
    assert set(values) == {
        "cpu.usage_percent", "cpu.cores", "cpu.load_average_1m", "cpu.load_average_5m",
        "cpu.load_average_15m", "memory.total_gb", "memory.used_gb", "memory.free_gb",
        "memory.usage_percent", "disk.total_gb", "disk.used_gb", "disk.free_gb",
        "disk.usage_percent", "disk.free_percent", "network.bytes_sent",
        "network.bytes_received", "network.packets_sent", "network.packets_received",
        "uptime_seconds", "requests.total", "requests.rate_per_second",
        "requests.average_latency_ms", "requests.p99_latency_ms", "requests.error_rate",
        "sessions.active", "sessions.total_today", "sessions.average_duration_minutes",
        "conversations.active", "conversations.completed_today",
        "conversations.average_messages", "errors.total", "errors.rate_per_hour"}
    assert values["requests.total"] == 1
    assert values["requests.average_latency_ms"] == 40.0
    assert values["cpu.cores"] == psutil.cpu_count()


@pytest.mark.parametrize(("period", "resolution", "complaint"), [
    ("30d", "minute", "resolution 'minute' is not allowed with period '30d'; allowed: hour, day"),
    ("1h", "day", "allowed: minute"),
    ("7d", "minute", "allowed: hour, day"),
    ("2h", "", "period must be one of 1h, 24h, 7d, 30d; got '2h'"),
    ("24h", "second", "resolution must be one of minute, hour, day"),
])
async def test_period_and_resolution_are_validated(start_metrics, period, resolution, complaint):
    async with start_metrics() as (_, stub):
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await stub.GetPerformanceMetrics(pb.GetPerformanceMetricsRequest(
                period=period, resolution=resolution))
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert complaint in failure.value.details()


@pytest.mark.parametrize(("period", "resolution", "points"), [
    ("", "", ("24h", "hour", 24)),
    ("1h", "", ("1h", "minute", 60)),
    ("24h", "minute", ("24h", "minute", 1440)),
    ("7d", "hour", ("7d", "hour", 168)),
    ("30d", "day", ("30d", "day", 30)),
])
async def test_defaults_and_bucket_counts(start_metrics, period, resolution, points):
    async with start_metrics() as (_, stub):
        reply = await stub.GetPerformanceMetrics(pb.GetPerformanceMetricsRequest(
            period=period, resolution=resolution))
    assert (reply.period, reply.resolution, len(reply.series)) == points
    starts = [p.timestamp.seconds for p in reply.series]
    width = {"minute": 60, "hour": 3600, "day": 86400}[reply.resolution]
    assert all(b - a == width for a, b in zip(starts, starts[1:], strict=False))
    assert starts[-1] <= time.time() < starts[-1] + width
