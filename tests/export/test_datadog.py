"""Datadog destination against a stand-in that validates the v2 series and logs schemas."""

from __future__ import annotations

import dataclasses
import gzip
import json
import time

import aiohttp
import pytest

from botmon.runtime.config import ConfigError
from services.export.sinks import datadog
from services.export.sinks.base import LogRecord, MetricFamily, MetricSample, SinkError
from tests.conftest import free_port
from tests.export.batches import (
    EVENTS,
    families,
    lines_now,
    operator_views,
    post,
    records,
    status_entry,
)
from tests.export.conftest import destinations, export_suite
from tests.export.datadog_double import LOGS_PATH, SERIES_PATH, DatadogDouble
from tests.waiting import eventually

API_KEY = "0123456789abcdef0123456789abcdef"


@pytest.fixture
async def double():
    server = DatadogDouble(api_key=API_KEY)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def sink(double):
    sink = datadog.create(datadog.Settings.from_env(
        {"BOTMON_DATADOG_API_KEY": API_KEY, "BOTMON_DATADOG_URL": double.url}))
    yield sink
    await sink.close()
    assert double.invalid == []


async def post_to(double, path, payload, *, key=API_KEY, raw: bytes | None = None) -> int:
    body = raw if raw is not None else gzip.compress(json.dumps(payload).encode())
    async with aiohttp.ClientSession() as session, session.post(
            double.url + path, data=body, headers={"DD-API-KEY": key,
                                                   "Content-Type": "application/json",
                                                   "Content-Encoding": "gzip"}) as reply:
        return reply.status


async def test_the_double_holds_payloads_to_the_v2_schemas(double):
    now = int(time.time())
    documented = {"series": [{"metric": "system.load.1", "type": 0,
                              "points": [{"timestamp": now, "value": 0.7}],
                              "resources": [{"name": "dummyhost", "type": "host"}]}]}
    assert await post_to(double, SERIES_PATH, documented) == 202
    assert await post_to(double, LOGS_PATH, [{"ddsource": "nginx", "ddtags": "env:staging",
                                           "hostname": "i-012345678", "message": "hello",
                                           "service": "payment"}]) == 202
    assert await post_to(double, SERIES_PATH, {"series": [{"metric": "x", "type": 5, "points": [
        {"timestamp": now, "value": 1}]}]}) == 400
    assert await post_to(double, SERIES_PATH, {"series": [{"metric": "x", "points": [
        {"timestamp": now, "value": "1"}]}]}) == 400
    assert await post_to(double, SERIES_PATH, {"series": [{"points": []}]}) == 400
    assert await post_to(double, LOGS_PATH, [{"message": "m", "metadata": {"nested": 1}}]) == 400
    assert await post_to(double, LOGS_PATH, [{"message": "m"}] * 1001) == 400
    assert await post_to(double, LOGS_PATH, [{"message": "m"}], raw=b"not gzip") == 400
    assert await post_to(double, LOGS_PATH, [{"message": "m"}], key="wrong") == 403
    assert len(double.invalid) == 7 and len(double.logs) == 1 and len(double.series) == 1


async def test_logs_arrive_with_status_service_tags_and_attributes(double, sink):
    batch = records(4)
    assert await sink.send_logs(batch) == datadog.SendResult()
    assert [item["message"] for item in double.logs] == [r.message for r in batch]
    for record, item in zip(batch, double.logs, strict=True):
        assert item["ddsource"] == "botmon"
        assert item["service"] == record.service
        assert item["status"] == {"warn": "warning"}.get(record.level, record.level)
        seconds, nanos = divmod(record.timestamp_ns, 10**9)
        assert item["timestamp"] == time.strftime(
            "%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos // 10**6:03d}Z"
        meta = record.metadata
        assert item["ddtags"].split(",") == [
            f"request_id:{meta['request_id']}", f"user.id:{meta['user.id']}",
            f"attempt:{meta['attempt']}", f"ok:{json.dumps(meta['ok'])}"]
        assert item["metadata.request_id"] == meta["request_id"]
        assert item["metadata.attempt"] == json.dumps(meta["attempt"])
    for path, headers, _ in double.requests:
        assert path == LOGS_PATH
        assert headers["Content-Encoding"] == "gzip" and headers["DD-API-KEY"] == API_KEY


async def test_logs_older_than_datadog_keeps_are_counted_not_sent(double, sink):
    now = time.time_ns()
    batch = [LogRecord(1, now - 19 * 3600 * 10**9, "info", "chat", "too old for Datadog"),
             LogRecord(2, now - 10**9, "info", "chat", "fresh")]
    result = await sink.send_logs(batch)
    assert result.rejected == (0,) and result.retry == ()
    assert [item["message"] for item in double.logs] == ["fresh"]


async def test_logs_are_cut_to_the_intake_limits(double, sink):
    await sink.send_logs(records(2_500))
    now = time.time_ns()
    large = [LogRecord(i, now + i, "info", "chat", "z" * 30_000) for i in range(200)]
    await sink.send_logs(large)
    assert len(double.logs) == 2_700
    assert len(double.requests) >= 3 + 2


async def test_metrics_arrive_as_gauges_and_counts(double, sink):
    t0 = time.time_ns() - 30 * 10**9
    start = t0 - 3600 * 10**9
    await sink.send_metrics(families(requests=10, latency_s=0.5, timestamp_ns=t0,
                                     start_ns=start, durations=(3, 5, 6)))
    await sink.send_metrics(families(requests=15, latency_s=0.25, timestamp_ns=t0 + 15 * 10**9,
                                     start_ns=start, durations=(5, 8, 10)))
    gauge = double.points("botmon_latency_seconds", service="chat")
    assert [(kind, value) for kind, value, _ in gauge] == [(3, 0.5), (3, 0.25)]
    assert gauge[0][2]["unit"] == "second"
    counts = double.points("botmon_requests_total", service="chat", status="200")
    assert [(kind, value) for kind, value, _ in counts] == [(1, 5.0)]
    assert counts[0][2]["interval"] == 15
    assert [v for _, v, _ in double.points("botmon_request_duration_seconds.count")] == [4.0]
    assert [v for _, v, _ in double.points("botmon_request_duration_seconds.sum")] == \
        [pytest.approx(6.0 - 3.3)]
    buckets = {s["tags"][-1]: v for _, v, s in double.points("botmon_request_duration_seconds.bucket")}
    assert buckets == {"upper_bound:0.1": 2.0, "upper_bound:1": 3.0, "upper_bound:inf": 4.0}


async def test_a_counter_reset_counts_from_zero(double, sink):
    t0 = time.time_ns() - 60 * 10**9
    start = t0 - 3600 * 10**9
    for requests, at, began in ((10, t0, start), (15, t0 + 20 * 10**9, start),
                                (2, t0 + 40 * 10**9, t0 + 30 * 10**9)):  # restarted at +30 s
        await sink.send_metrics(families(requests=requests, timestamp_ns=at, start_ns=began))
    counts = double.points("botmon_requests_total", service="chat", status="200")
    assert [value for _, value, _ in counts] == [5.0, 2.0]
    assert [series["interval"] for _, _, series in counts] == [20, 20]


async def test_a_series_new_since_the_first_export_is_counted_whole(double, sink):
    t0 = time.time_ns() - 60 * 10**9
    first, later = families(requests=10, timestamp_ns=t0), families(requests=12,
                                                                     timestamp_ns=t0 + 20 * 10**9)
    counter = later[0]
    new_route = MetricSample({"service": "chat", "status": "404"}, value=4.0)
    await sink.send_metrics(first)  # a baseline: no counts
    await sink.send_metrics([dataclasses.replace(counter, samples=[*counter.samples, new_route])])
    assert [v for _, v, _ in double.points("botmon_requests_total", status="404")] == [4.0]
    assert [v for _, v, _ in double.points("botmon_requests_total", status="200")] == [2.0]


async def test_a_moving_start_time_is_not_a_reset(double, sink):
    # With no event stored yet, the catalogue's start time is its sample time, while host
    # counters (bytes since boot) keep growing: increases, never the whole value again.
    t0 = time.time_ns() - 60 * 10**9
    for requests, at in ((1000, t0), (1300, t0 + 20 * 10**9), (1350, t0 + 40 * 10**9)):
        await sink.send_metrics(families(requests=requests, timestamp_ns=at, start_ns=at))
    counts = double.points("botmon_requests_total", service="chat", status="200")
    assert [value for _, value, _ in counts] == [300.0, 50.0]


async def test_series_are_cut_below_the_payload_limit(double, sink):
    now = time.time_ns()
    wide = MetricFamily("botmon_queue_depth", "gauge", "Depth.", "", now, now - 10**9, [
        MetricSample({"queue": f"queue-{i:05d}-" + "q" * 300}, value=float(i))
        for i in range(4_000)])
    await sink.send_metrics([wide])
    assert len(double.series) == 4_000
    assert len(double.requests) >= 2


async def test_failures_say_whether_to_retry(double, sink):
    double.fail_next(LOGS_PATH, 429, {"X-RateLimit-Reset": "9"})
    with pytest.raises(SinkError) as caught:
        await sink.send_logs(records(1))
    assert caught.value.retryable and caught.value.retry_after == 9.0

    double.fail_next(SERIES_PATH, 503, {"Retry-After": "4"})
    with pytest.raises(SinkError) as caught:
        await sink.send_metrics(families())
    assert caught.value.retryable and caught.value.retry_after == 4.0

    double.fail_next(LOGS_PATH, 400)
    with pytest.raises(SinkError) as caught:
        await sink.send_logs(records(1))
    assert not caught.value.retryable

    wrong = "ffffffffffffffffffffffffffffffff"
    bad = datadog.create(datadog.Settings.from_env({}, api_key=wrong, url=double.url))
    try:
        with pytest.raises(SinkError) as caught:
            await bad.send_logs(records(1))
        assert caught.value.retryable and "403" in str(caught.value)
        assert wrong not in str(caught.value)
    finally:
        await bad.close()
    double.invalid.clear()

    down = datadog.create(datadog.Settings.from_env(
        {}, api_key=API_KEY, url=f"http://127.0.0.1:{free_port()}"))
    try:
        with pytest.raises(SinkError) as caught:
            await down.send_logs(records(1))
        assert caught.value.retryable and API_KEY not in str(caught.value)
    finally:
        await down.close()


async def test_a_failure_after_a_first_accepted_call_returns_only_the_rest(double, sink):
    double.fail_next(LOGS_PATH, 503, after=1)
    batch = records(1_500)
    result = await sink.send_logs(batch)
    assert result.retry == tuple(range(1_000, 1_500))
    assert len(double.logs) == 1_000


def test_site_selection():
    eu = datadog.Settings.from_env({"BOTMON_DATADOG_API_KEY": "k",
                                    "BOTMON_DATADOG_SITE": "datadoghq.eu"})
    assert eu.enabled
    assert eu.series_url == "https://api.datadoghq.eu/api/v2/series"
    assert eu.logs_url == "https://http-intake.logs.datadoghq.eu/api/v2/logs"
    default = datadog.Settings.from_env({"BOTMON_DATADOG_API_KEY": "k"})
    assert default.logs_url == "https://http-intake.logs.datadoghq.com/api/v2/logs"
    proxied = datadog.Settings.from_env({"BOTMON_DATADOG_API_KEY": "k",
                                         "BOTMON_DATADOG_URL": "http://proxy:8080/"})
    assert proxied.series_url == "http://proxy:8080/api/v2/series"
    assert proxied.logs_url == "http://proxy:8080/api/v2/logs"
    assert not datadog.Settings.from_env({}).enabled
    assert datadog.Settings.from_env({"BOTMON_DATADOG_API_KEY": "s3cret"}).redacted()[
        "BOTMON_DATADOG_API_KEY"] == "***"


@pytest.mark.parametrize(("environ", "variable"), [
    ({"BOTMON_DATADOG_API_KEY": "k", "BOTMON_DATADOG_SITE": "https://datadoghq.com"},
     "BOTMON_DATADOG_SITE"),
    ({"BOTMON_DATADOG_API_KEY": "k", "BOTMON_DATADOG_URL": "proxy:8080"}, "BOTMON_DATADOG_URL"),
    ({"BOTMON_DATADOG_URL": "http://proxy:8080"}, "BOTMON_DATADOG_API_KEY"),
])
def test_bad_settings_name_the_variable(environ, variable):
    with pytest.raises(ConfigError) as caught:
        datadog.Settings.from_env(environ)
    assert str(caught.value).startswith(variable + ":")


@pytest.mark.timeout(90)
async def test_through_the_export_loop(make_settings, double):
    double.fail_next(LOGS_PATH, 503)  # down at first: the batch waits, then arrives once
    sinks = {"datadog": datadog.Settings(api_key=API_KEY, url=double.url)}
    async with export_suite(make_settings(), sinks) as suite:
        lines = lines_now()
        await post(suite, "/logs", {"logs": lines})
        await eventually(lambda: len(double.logs) >= 4 or double.invalid, within=20)
        assert double.invalid == []
        items = {item["message"]: item for item in double.logs}
        assert len(double.logs) == 4
        error = items["upstream timed out"]
        assert error["ddsource"] == "botmon" and error["service"] == "chat-api"
        assert error["status"] == "error" and items["flaky"]["status"] == "warning"
        assert error["timestamp"] == lines[0]["timestamp"].replace(".123456Z", ".123Z")
        assert {"user_id:u-1", "attempt:3"} <= set(error["ddtags"].split(","))
        assert error["metadata.ctx"] == '{"region":"eu"}'
        assert items["job done"]["service"] == "worker"

        # Counts are what happened since the previous export: count events after the first.
        await eventually(lambda: double.series, within=20)
        await post(suite, "/metrics/events", {"events": EVENTS})

        def counted():
            return sum(value for kind, value, _ in double.points("botserver_requests_total")
                       if kind == 1)

        await eventually(lambda: counted() == 3, within=20)
        errors = double.points("botserver_requests_total", status="502")
        assert sum(value for _, value, _ in errors) == 1
        assert sum(v for _, v, _ in double.points("botserver_request_duration_seconds.count")) == 3
        state = (await destinations(suite))["datadog"]
        assert state.sent == 4 and state.failed == 0
        # /status shows the same figures once its entry is refreshed.
        entry = await eventually(lambda: status_entry(suite, "export:datadog", sent=4), within=10)
        assert entry["status"] == "running" and entry["details"]["failed"] == 0
        assert API_KEY not in await operator_views(suite)
