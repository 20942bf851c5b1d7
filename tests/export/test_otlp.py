"""OTLP export: logs and metrics reach real OTLP receivers (gRPC and HTTP) intact."""

from __future__ import annotations

import email.utils
import time

import httpx
import psutil
import pytest

from services.export.sinks import otlp
from services.export.sinks.base import SinkError
from tests.export.batches import records
from tests.export.conftest import destinations, export_suite
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(90)

LINES = [
    {"timestamp": "2026-01-02T03:04:05.123456Z", "level": "error", "service": "chat-api",
     "message": "upstream timed out", "metadata": {"user_id": "u-1", "attempt": 3,
                                                   "retry": True, "ctx": {"region": "eu"}}},
    {"level": "warn", "service": "chat-api", "message": "slow reply"},
    {"level": "info", "service": "worker", "message": "job done", "metadata": {"job": "j-9"}},
    {"level": "debug", "service": "worker", "message": "tick"},
]


async def _post_logs(suite, lines):
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.post(f"{suite.base}/logs", json={"logs": lines},
                            headers=suite.headers("operator"))
        assert r.status_code in (200, 201, 202), r.text


async def test_logs_arrive_over_grpc_with_severity_service_and_metadata(
        make_settings, grpc_receiver):
    sinks = {"otlp": otlp.Settings(endpoint=grpc_receiver.endpoint,
                                   resource_attributes=(("deployment.environment", "test"),))}
    async with export_suite(make_settings(), sinks) as suite:
        # Entries older than MAX_AGE (24 h) would be skipped: send one dated now too.
        now_line = {"level": "info", "service": "chat-api", "message": "now"}
        old = dict(LINES[0], timestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        await _post_logs(suite, [old, *LINES[1:], now_line])
        received = grpc_receiver.received
        await eventually(lambda: len(received.logs) >= 5, within=15)
        by_body = {r["body"]: r for r in received.logs}
        error = by_body["upstream timed out"]
        assert error["severity_number"] == 17 and error["severity_text"] == "ERROR"
        assert error["resource"]["service.name"] == "chat-api"
        assert error["resource"]["deployment.environment"] == "test"
        assert error["attributes"] == {"user_id": "u-1", "attempt": 3, "retry": True,
                                       "ctx": {"region": "eu"}}
        stamp = time.strptime(old["timestamp"], "%Y-%m-%dT%H:%M:%SZ")
        assert error["time_unix_nano"] == int(time.mktime(stamp) - time.timezone) * 10**9
        assert by_body["slow reply"]["severity_number"] == 13
        assert by_body["slow reply"]["severity_text"] == "WARN"
        assert by_body["job done"]["severity_number"] == 9
        assert by_body["job done"]["resource"]["service.name"] == "worker"
        assert by_body["tick"]["severity_number"] == 5
        # Each entry once: nothing was retried.
        assert sorted(received.bodies()) == sorted(
            ["upstream timed out", "slow reply", "job done", "tick", "now"])
        state = (await destinations(suite))["otlp"]
        assert state.sent == 5 and state.failed == 0 and state.status == "running"


async def test_records_arrive_exact_whatever_their_length_and_script(
        make_settings, grpc_receiver):
    # Records are written in the wire format by hand: lengths of one, two and three varint
    # bytes (and pairs either side of the one-byte fast path), text beyond ASCII, values
    # that are not strings, and services interleaved.
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    lines = [{"timestamp": now, "level": level, "service": f"svc-{i % 3}",
              "message": f"{i} " + "ünïcødé ✓ 日本 " * size,
              "metadata": {"k" * (1 + size % 200): "v" * size, "n": i, "f": 2.5,
                           "ok": i % 2 == 0, "list": [1, "two"], "obj": {"deep": "é"},
                           "edge": "e" * (114 + i)}}
             for i, (level, size) in enumerate([("info", 0), ("warn", 9), ("error", 130),
                                                ("debug", 700), ("info", 1300)])]
    async with export_suite(make_settings(), {"otlp": otlp.Settings(
            endpoint=grpc_receiver.endpoint)}) as suite:
        await _post_logs(suite, lines)
        received = grpc_receiver.received
        await eventually(lambda: len(received.logs) >= len(lines), within=15)
        by_body = {r["body"]: r for r in received.logs}
        for line in lines:
            got = by_body[line["message"]]
            assert got["resource"]["service.name"] == line["service"]
            assert got["severity_text"] == line["level"].upper()
            assert got["attributes"] == line["metadata"]
            assert got["time_unix_nano"] == time.mktime(time.strptime(
                now, "%Y-%m-%dT%H:%M:%SZ")) * 10**9 - time.timezone * 10**9
        assert len(received.logs) == len(lines)


async def test_metrics_arrive_with_their_types_and_values(make_settings, grpc_receiver):
    sinks = {"otlp": otlp.Settings(endpoint=grpc_receiver.endpoint, service_name="botmon-test")}
    async with export_suite(make_settings(), sinks) as suite:
        async with httpx.AsyncClient(timeout=10) as http:
            events = {"events": [
                {"type": "request", "method": "GET", "route": "/chat", "status": 200,
                 "duration_ms": 120},
                {"type": "request", "method": "GET", "route": "/chat", "status": 502,
                 "duration_ms": 80},
                {"type": "request", "method": "POST", "route": "/chat", "status": 200,
                 "duration_ms": 30},
                {"type": "session_started", "session_id": "s1"},
            ]}
            r = await http.post(f"{suite.base}/metrics/events", json=events,
                                headers=suite.headers("operator"))
            assert r.status_code == 202, r.text
        received = grpc_receiver.received

        def requests_counted():
            metric = received.metrics().get("botserver_requests_total")
            if not metric:
                return None
            points = metric["sum"].get("dataPoints", [])
            total = sum(p.get("asDouble", 0) for p in points)
            return metric if total == 3 else None

        metric = await eventually(requests_counted, within=20)
        assert metric["sum"]["isMonotonic"] is True
        assert metric["sum"]["aggregationTemporality"] == "AGGREGATION_TEMPORALITY_CUMULATIVE"
        by_labels = {(a["key"], a["value"]["stringValue"]) for p in metric["sum"]["dataPoints"]
                     for a in p["attributes"]}
        assert ("status", "502") in by_labels and ("method", "POST") in by_labels
        metrics = received.metrics()
        histogram = metrics["botserver_request_duration_seconds"]["histogram"]
        point = histogram["dataPoints"][0]
        assert int(point["count"]) == 3 and point["sum"] == pytest.approx(0.23)
        assert sum(int(c) for c in point["bucketCounts"]) == 3
        assert len(point["bucketCounts"]) == len(point["explicitBounds"]) + 1
        assert histogram["aggregationTemporality"] == "AGGREGATION_TEMPORALITY_CUMULATIVE"
        active = metrics["botserver_sessions_active"]["gauge"]["dataPoints"][0]
        assert active["asDouble"] == 1
        resource = received.metric_requests[-1].resource_metrics[0].resource
        assert {a.key: a.value.string_value for a in resource.attributes}["service.name"] \
            == "botmon-test"


async def test_http_protobuf_with_headers(make_settings, http_receiver):
    sinks = {"otlp": otlp.Settings(endpoint=http_receiver.endpoint, protocol="http/protobuf",
                                   headers=(("x-api-key", "s3cret-key-value"),),
                                   compression="gzip")}
    async with export_suite(make_settings(), sinks) as suite:
        await _post_logs(suite, [{"level": "info", "service": "web", "message": "over http",
                                  "metadata": {"k": "v"}}])
        received = http_receiver.received
        await eventually(lambda: "over http" in received.bodies(), within=15)
        record = next(r for r in received.logs if r["body"] == "over http")
        assert record["attributes"] == {"k": "v"} and record["severity_text"] == "INFO"
        assert all(h.get("x-api-key") == "s3cret-key-value" for h in received.headers)
        assert all(h.get("content-encoding") == "gzip" for h in received.headers)
        await eventually(lambda: received.metric_requests, within=10)
        async with httpx.AsyncClient(timeout=10) as http:
            status = (await http.get(f"{suite.base}/status", headers=suite.headers())).text
            debug = (await http.get(f"{suite.base}/debug/info",
                                    headers=suite.headers("admin"))).text
        assert "s3cret-key-value" not in status and "s3cret-key-value" not in debug


@pytest.mark.parametrize("retry_after", ["7", "http-date"])
async def test_http_retry_after_is_given_to_the_loop(http_receiver, retry_after):
    if retry_after == "http-date":
        retry_after = email.utils.formatdate(time.time() + 7, usegmt=True)
    http_receiver.fail_logs = [(503, retry_after)]
    sink = otlp.create(otlp.Settings(endpoint=http_receiver.endpoint, protocol="http/protobuf"))
    try:
        with pytest.raises(SinkError) as caught:
            await sink.send_logs(records(2))
    finally:
        await sink.close()
    assert caught.value.retryable and 5.0 <= caught.value.retry_after <= 7.0


def _points(request, name: str) -> list:
    """The data points of metric ``name`` in one export request."""
    for resource_metrics in request.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == name:
                    kind = metric.WhichOneof("data")
                    return list(getattr(metric, kind).data_points)
    return []


async def test_cumulative_start_times_stay_fixed_across_exports(make_settings, grpc_receiver):
    sinks = {"otlp": otlp.Settings(endpoint=grpc_receiver.endpoint)}
    async with export_suite(make_settings(), sinks) as suite:
        received = grpc_receiver.received
        # Exports every 2 s (FAST); an event between them makes the request counter move.
        await eventually(lambda: received.metric_requests, within=15)
        async with httpx.AsyncClient(timeout=10) as http:
            r = await http.post(f"{suite.base}/metrics/events", headers=suite.headers("operator"),
                                json={"events": [{"type": "request", "method": "GET",
                                                  "route": "/chat", "status": 200,
                                                  "duration_ms": 12}]})
            assert r.status_code == 202, r.text
        await eventually(lambda: len(received.metric_requests) >= 3, within=15)
        requests = received.metric_requests
        for name in ("botserver_requests_total", "botserver_request_duration_seconds",
                     "botserver_network_sent_bytes_total"):
            starts = {p.start_time_unix_nano for request in requests[1:]
                      for p in _points(request, name)}
            assert len(starts) == 1 and 0 < min(starts), (name, starts)
            assert all(p.start_time_unix_nano < p.time_unix_nano
                       for p in _points(requests[-1], name))
        # The host's counters count since its boot, the platform's since the store began.
        network = _points(requests[-1], "botserver_network_sent_bytes_total")[0]
        assert network.start_time_unix_nano / 1e9 == pytest.approx(psutil.boot_time(), abs=1)
        assert _points(requests[-1], "botserver_requests_total")[0].start_time_unix_nano \
            > network.start_time_unix_nano
        assert all(p.start_time_unix_nano == 0
                   for p in _points(requests[-1], "botserver_sessions_active"))
