"""CloudWatch destination against moto's server, read back with boto3."""

from __future__ import annotations

import asyncio
import datetime
import json
import time

import boto3
import botocore.exceptions
import pytest
import requests
from aiobotocore.session import get_session
from moto.server import ThreadedMotoServer

from botmon.runtime.config import ConfigError
from services.export.sinks import cloudwatch
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
from tests.waiting import eventually

GROUP = "/botserver/botmon"


@pytest.fixture(scope="module")
def moto_url():
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    # Load moto's logs and cloudwatch backends now, not inside a test's send deadline.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        aws(url, "logs").describe_log_groups()
        aws(url, "cloudwatch").list_metrics(Namespace="BotServer")
    yield url
    server.stop()


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch, moto_url):
    # The standard credential chain, from the environment; never the instance metadata.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    requests.post(f"{moto_url}/moto-api/reset", timeout=10)


@pytest.fixture
def calls():
    """A botocore session recording the parameters of every PutLogEvents / PutMetricData."""
    session = get_session()
    seen: dict[str, list[dict]] = {"PutLogEvents": [], "PutMetricData": []}
    session.register("provide-client-params.cloudwatch-logs.PutLogEvents",
                     lambda params, **_: seen["PutLogEvents"].append(params))
    session.register("provide-client-params.cloudwatch.PutMetricData",
                     lambda params, **_: seen["PutMetricData"].append(params))
    return session, seen


@pytest.fixture
async def sink(moto_url, calls):
    settings = cloudwatch.Settings.from_env({"BOTMON_CLOUDWATCH_REGION": "eu-west-1",
                                             "BOTMON_CLOUDWATCH_ENDPOINT_URL": moto_url})
    sink = cloudwatch.CloudWatchSink(settings, session=calls[0])
    yield sink
    await sink.close()


def aws(moto_url, service):
    return boto3.client(service, region_name="eu-west-1", endpoint_url=moto_url)


def stream_events(moto_url, stream: str) -> list[dict]:
    logs, events, token = aws(moto_url, "logs"), [], None
    while True:
        extra = {"nextToken": token} if token else {}
        page = logs.get_log_events(logGroupName=GROUP, logStreamName=stream, startFromHead=True,
                                   **extra)
        events += page["events"]
        if not page["events"] or page["nextForwardToken"] == token:
            return events
        token = page["nextForwardToken"]


async def test_logs_arrive_in_one_stream_per_service(moto_url, sink):
    batch = records(6)
    assert await sink.send_logs(batch) == cloudwatch.SendResult()
    logs = aws(moto_url, "logs")
    assert [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]] == [GROUP]
    streams = logs.describe_log_streams(logGroupName=GROUP)["logStreams"]
    assert sorted(s["logStreamName"] for s in streams) == ["billing", "chat"]
    for service in ("chat", "billing"):
        sent = [r for r in batch if r.service == service]
        arrived = stream_events(moto_url, service)
        assert [e["timestamp"] for e in arrived] == [r.timestamp_ns // 10**6 for r in sent]
        for record, event in zip(sent, arrived, strict=True):
            assert json.loads(event["message"]) == {
                "level": record.level, "service": service, "message": record.message,
                "metadata": dict(record.metadata)}


async def test_puts_respect_cloudwatch_logs_limits(moto_url, sink, calls):
    now_ns = time.time_ns()
    hour = 3600 * 10**9
    # 30 hours of entries, newest first; 12,000 small ones; 3,000 of a kilobyte each.
    spread = [LogRecord(i, now_ns - (29 - i) * hour, "info", "spread", f"h{i}")
              for i in reversed(range(30))]
    many = [LogRecord(i, now_ns - 10**9 + i, "info", "many", "x") for i in range(12_000)]
    large = [LogRecord(i, now_ns - 10**9 + i * 1000, "info", "large", "y" * 1000)
             for i in range(3_000)]
    for batch in (spread, many, large):
        assert await sink.send_logs(batch) == cloudwatch.SendResult()

    puts = calls[1]["PutLogEvents"]
    for put in puts:
        events = put["logEvents"]
        stamps = [e["timestamp"] for e in events]
        assert len(events) <= 10_000
        assert sum(len(e["message"].encode()) + 26 for e in events) <= 1_048_576
        assert stamps == sorted(stamps)
        assert stamps[-1] - stamps[0] < 24 * 3600 * 1000
    per_stream = {s: sum(1 for p in puts if p["logStreamName"] == s)
                  for s in ("spread", "many", "large")}
    assert per_stream["spread"] >= 2 and per_stream["many"] >= 2 and per_stream["large"] >= 3
    assert len(stream_events(moto_url, "spread")) == 30
    assert len(stream_events(moto_url, "many")) == 12_000
    assert len(stream_events(moto_url, "large")) == 3_000


async def test_events_cloudwatch_refuses_are_rejected_not_resent(moto_url, sink):
    now_ns = time.time_ns()
    batch = [LogRecord(1, now_ns - 10**9, "info", "chat", "now"),
             LogRecord(2, now_ns + 3 * 3600 * 10**9, "info", "chat", "three hours ahead")]
    result = await sink.send_logs(batch)
    assert result.rejected == (1,) and result.retry == ()
    assert [e["message"] for e in stream_events(moto_url, "chat")] == [
        cloudwatch.event_message(batch[0])]


async def test_what_botocore_validated_holds_without_it(moto_url, sink):
    # The sink sends with botocore's parameter validation off: stream names, messages and
    # dimensions are made valid here, and what orjson cannot write is written as before.
    now = time.time_ns()
    odd = LogRecord(1, now - 10**9, "info", "api:v2*", "a stream name needs no : or *")
    wide = LogRecord(2, now - 10**9, "info", "wide", "an integer orjson refuses",
                     {"n": 2**70, "f": 2.0, "e": 1.5e-7})
    assert await sink.send_logs([odd, wide]) == cloudwatch.SendResult()
    assert [e["message"] for e in stream_events(moto_url, "api_v2_")] == [
        cloudwatch.event_message(odd)]
    (event,) = stream_events(moto_url, "wide")
    assert json.loads(event["message"])["metadata"] == {"n": 2**70, "f": 2, "e": 1.5e-7}
    family = MetricFamily("botmon_queue_depth", "gauge", "Depth.", "", now, 0, [
        MetricSample({"queue": "q1", "empty": "", "": "no name"}, value=3.0)])
    await sink.send_metrics([family])
    (metric,) = aws(moto_url, "cloudwatch").list_metrics(Namespace="BotServer")["Metrics"]
    assert metric["Dimensions"] == [{"Name": "queue", "Value": "q1"}]


async def test_a_deleted_group_is_created_again(moto_url, sink):
    await sink.send_logs(records(2))
    aws(moto_url, "logs").delete_log_group(logGroupName=GROUP)
    assert await sink.send_logs(records(4)) == cloudwatch.SendResult()
    assert len(stream_events(moto_url, "chat")) == 2


def statistic(moto_url, name, dimensions, stat, unit=None):
    now = datetime.datetime.now(datetime.UTC)
    reply = aws(moto_url, "cloudwatch").get_metric_statistics(
        Namespace="BotServer", MetricName=name, Statistics=[stat], Period=60,
        StartTime=now - datetime.timedelta(hours=2), EndTime=now + datetime.timedelta(hours=1),
        Dimensions=[{"Name": k, "Value": v} for k, v in dimensions.items()],
        **({"Unit": unit} if unit else {}))
    return sum(point[stat] for point in reply["Datapoints"])


async def test_metrics_arrive_as_gauges_and_increases(moto_url, sink):
    t0 = time.time_ns() - 30 * 10**9
    # The first snapshot of series that began before the exporter: a baseline for counters.
    start = t0 - 3600 * 10**9
    await sink.send_metrics(families(requests=10, latency_s=0.5, timestamp_ns=t0,
                                     start_ns=start, durations=(3, 5, 6)))
    await sink.send_metrics(families(requests=15, latency_s=0.25, timestamp_ns=t0 + 15 * 10**9,
                                     start_ns=start, durations=(5, 8, 10)))
    names = {m["MetricName"] for m in aws(moto_url, "cloudwatch").list_metrics(
        Namespace="BotServer")["Metrics"]}
    assert names == {"botmon_requests_total", "botmon_latency_seconds",
                     "botmon_request_duration_seconds", "botmon_request_duration_seconds_count",
                     "botmon_request_duration_seconds_sum"}
    ok = {"service": "chat", "status": "200"}
    assert statistic(moto_url, "botmon_requests_total", ok, "Sum") == 5.0
    assert statistic(moto_url, "botmon_requests_total", {"service": "chat", "status": "500"},
                     "Sum") == 0.0
    chat = {"service": "chat"}
    assert statistic(moto_url, "botmon_latency_seconds", chat, "Minimum") == 0.25
    assert statistic(moto_url, "botmon_latency_seconds", chat, "Maximum") == 0.5
    assert statistic(moto_url, "botmon_request_duration_seconds_count", chat, "Sum") == 4.0
    # The distribution: 2 observations at <= 0.1 s, 1 at <= 1 s, 1 above (at the last bound).
    assert statistic(moto_url, "botmon_request_duration_seconds", chat, "SampleCount") == 4.0
    assert statistic(moto_url, "botmon_request_duration_seconds", chat, "Sum") == \
        pytest.approx(2 * 0.1 + 1.0 + 1.0)


async def test_a_resent_snapshot_adds_no_increase_twice(moto_url, sink):
    start = time.time_ns() - 60 * 10**9
    await sink.send_metrics(families(requests=3, timestamp_ns=start + 10**9, start_ns=start))
    snapshot = families(requests=10, timestamp_ns=start + 11 * 10**9, start_ns=start)
    await sink.send_metrics(snapshot)
    await sink.send_metrics(snapshot)  # the loop resends a snapshot whose send failed
    assert statistic(moto_url, "botmon_requests_total", {"service": "chat", "status": "200"},
                     "Sum") == 7.0


async def test_put_metric_data_takes_at_most_1000_items(moto_url, sink, calls):
    now = time.time_ns()
    wide = MetricFamily("botmon_queue_depth", "gauge", "Depth.", "", now, now - 10**9,
                        [MetricSample({"queue": f"q{i}"}, value=float(i)) for i in range(1_500)])
    await sink.send_metrics([wide])
    sizes = [len(put["MetricData"]) for put in calls[1]["PutMetricData"]]
    assert sizes == [1000, 500]
    client, metrics, token = aws(moto_url, "cloudwatch"), [], None
    while True:
        page = client.list_metrics(Namespace="BotServer", **({"NextToken": token} if token else {}))
        metrics += page["Metrics"]
        token = page.get("NextToken")
        if not token:
            break
    assert len(metrics) == 1_500


async def test_an_unreachable_endpoint_is_a_retryable_failure():
    settings = cloudwatch.Settings.from_env({
        "BOTMON_CLOUDWATCH_REGION": "eu-west-1",
        "BOTMON_CLOUDWATCH_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"})
    sink = cloudwatch.create(settings)
    try:
        with pytest.raises(SinkError) as caught:
            await sink.send_logs(records(1))
        assert caught.value.retryable
        assert "testing-secret" not in str(caught.value)
    finally:
        await sink.close()


@pytest.mark.parametrize(("environ", "variable"), [
    ({"BOTMON_CLOUDWATCH_REGION": "Europe"}, "BOTMON_CLOUDWATCH_REGION"),
    ({"BOTMON_CLOUDWATCH_NAMESPACE": "AWS/EC2"}, "BOTMON_CLOUDWATCH_NAMESPACE"),
    ({"BOTMON_CLOUDWATCH_LOG_GROUP": "bad group!"}, "BOTMON_CLOUDWATCH_LOG_GROUP"),
    ({"BOTMON_CLOUDWATCH_ENDPOINT_URL": "localhost:4566"}, "BOTMON_CLOUDWATCH_ENDPOINT_URL"),
])
def test_bad_settings_name_the_variable(environ, variable):
    with pytest.raises(ConfigError) as caught:
        cloudwatch.Settings.from_env(environ)
    assert str(caught.value).startswith(variable + ":")


def test_enabled_by_a_region_or_an_endpoint():
    assert not cloudwatch.Settings.from_env({}).enabled
    assert cloudwatch.Settings.from_env({"BOTMON_CLOUDWATCH_REGION": "us-east-1"}).enabled


@pytest.mark.timeout(90)
async def test_through_the_export_loop(make_settings, moto_url):
    sinks = {"cloudwatch": cloudwatch.Settings(region="eu-west-1", endpoint_url=moto_url)}
    async with export_suite(make_settings(), sinks) as suite:
        lines = lines_now()
        await post(suite, "/logs", {"logs": lines})

        async def arrived():
            try:
                streams = await asyncio.gather(*(asyncio.to_thread(stream_events, moto_url, s)
                                                 for s in ("chat-api", "worker")))
            except botocore.exceptions.ClientError:  # the group or a stream is not there yet
                return None
            return streams if sum(map(len, streams)) == 4 else None

        chat, worker = await eventually(arrived, within=30)
        error = json.loads(chat[0]["message"])
        assert error == {"level": "error", "service": "chat-api", "message": "upstream timed out",
                         "metadata": {"user_id": "u-1", "attempt": 3, "ctx": {"region": "eu"}}}
        stamp = datetime.datetime.fromisoformat(lines[0]["timestamp"].replace("Z", "+00:00"))
        assert chat[0]["timestamp"] == int(stamp.timestamp() * 1000)
        assert [json.loads(e["message"])["level"] for e in worker] == ["info", "debug"]

        # Counters arrive as increases: count events after the first export of the catalogue.
        cw = aws(moto_url, "cloudwatch")

        def listed():
            return cw.list_metrics(Namespace="BotServer")["Metrics"]

        await eventually(lambda: asyncio.to_thread(listed), within=20)
        await post(suite, "/metrics/events", {"events": EVENTS})

        def requests_total():
            return sum(statistic(moto_url, "botserver_requests_total",
                                 {d["Name"]: d["Value"] for d in m["Dimensions"]}, "Sum")
                       for m in listed() if m["MetricName"] == "botserver_requests_total")

        await eventually(lambda: asyncio.to_thread(lambda: requests_total() == 3), within=20)
        state = (await destinations(suite))["cloudwatch"]
        assert state.sent == 4 and state.failed == 0
        # /status shows the same figures once its entry is refreshed.
        entry = await eventually(lambda: status_entry(suite, "export:cloudwatch", sent=4), within=10)
        assert entry["status"] == "running" and entry["details"]["failed"] == 0
        assert "testing-secret" not in await operator_views(suite)


@pytest.mark.timeout(90)
async def test_an_outage_is_caught_up_when_cloudwatch_returns(make_settings):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    sinks = {"cloudwatch": cloudwatch.Settings(region="eu-west-1", endpoint_url=url)}
    async with export_suite(make_settings(), sinks) as suite:
        await post(suite, "/logs", {"logs": lines_now()})

        async def degraded():
            entry = (await destinations(suite)).get("cloudwatch")
            return entry if entry and entry.status == "degraded" else None

        await eventually(degraded, within=20)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        try:
            async def arrived():
                try:
                    streams = await asyncio.gather(*(asyncio.to_thread(stream_events, url, s)
                                                     for s in ("chat-api", "worker")))
                except botocore.exceptions.ClientError:
                    return None
                return streams if sum(map(len, streams)) >= 4 else None

            chat, worker = await eventually(arrived, within=30)
            assert len(chat) + len(worker) == 4  # each entry once
            entry = await eventually(lambda: status_entry(suite, "export:cloudwatch", sent=4),
                                     within=15)
            assert entry["status"] == "running"
        finally:
            server.stop()
