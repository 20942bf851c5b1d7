"""REST -> gRPC transcoding from the annotations, through real HTTP and real gRPC servers."""

from __future__ import annotations

import pytest

from tests.gateway.fakes import RecordingAlerts, RecordingLogs, RecordingMetrics
from tests.harness import Suite


@pytest.fixture
async def suite(make_settings):
    servicers = {"logs": RecordingLogs(), "alerts": RecordingAlerts(),
                 "metrics": RecordingMetrics()}
    async with Suite(make_settings(), components=(), servicers=servicers) as suite:
        yield suite


async def test_query_parameters_bind_scalars_maps_and_unix_timestamps(suite, http):
    r = await http.get(f"{suite.base}/logs", headers=suite.headers(), params=[
        ("level", "warn"), ("limit", "50"), ("service", "web"), ("start_time", "1705312800"),
        ("end_time", "2024-01-15T11:00:00.5+01:00"), ("metadata.user_id", "user_456"),
        ("metadata[http.status]", "500")])
    assert r.status_code == 200, r.text
    request, _ = suite.servicers["logs"].last("ListLogs")
    assert (request.level, request.limit, request.service) == ("warn", 50, "web")
    assert request.start_time.seconds == 1705312800
    assert (request.end_time.seconds, request.end_time.nanos) == (1705312800, 500_000_000)
    assert dict(request.metadata) == {"user_id": "user_456", "http.status": "500"}
    query = r.json()["query"]
    assert query["start_time"] == "2024-01-15T10:00:00Z"
    assert query["end_time"] == "2024-01-15T10:00:00.500Z"
    assert query["metadata"] == {"user_id": "user_456", "http.status": "500"}


async def test_responses_keep_int64_as_numbers_defaults_and_nulls(suite, http):
    r = await http.get(f"{suite.base}/logs", headers=suite.headers())
    body = r.json()
    assert body["total"] == 2**62 and isinstance(body["total"], int)
    first, bare = body["logs"]
    assert first["id"] == 2**53 + 1
    assert first["timestamp"] == "2024-01-15T10:00:00Z"
    assert first["metadata"] == {"request_id": "req_123", "duration_ms": 150, "ratio": 0.5}
    # Defaults present, unset messages null.
    assert bare == {"timestamp": None, "level": "", "service": "", "message": "",
                    "metadata": None, "id": 0}
    assert body["query"]["start_time"] is None and body["next_cursor"] == ""
    r = await http.get(f"{suite.base}/errors/summary?period=1h", headers=suite.headers())
    summary = r.json()["summary"]
    assert summary["errors_by_type"] == {"timeout_error": 2**40}
    assert summary["last_error_time"] is None and summary["error_rate"] == 0


async def test_repeated_and_nested_fields_in_body(suite, http):
    rule = {"name": "high_memory_usage", "type": "threshold", "metric": "memory.usage_percent",
            "condition": "greater_than", "threshold": 90, "duration_seconds": 300,
            "severity": "warning", "recovery_threshold": 80.5, "labels": {"team": "ops"},
            "notify": {"email": ["admin@example.com"], "webhook": "https://example.com/a"}}
    r = await http.post(f"{suite.base}/alerts/configure", json=rule,
                        headers=suite.headers("operator"))
    assert r.status_code == 201, r.text
    request, metadata = suite.servicers["alerts"].last("ConfigureAlertRule")
    assert request.rule.notify.email == ["admin@example.com"]
    assert request.rule.duration_seconds == 300 and request.rule.recovery_threshold == 80.5
    assert dict(request.rule.labels) == {"team": "ops"}
    assert metadata["x-botmon-subject"] == "test-operator"
    assert metadata["x-botmon-role"] == "operator"
    stored = r.json()["rule"]
    assert stored["create_time"] is None and stored["recovery_threshold"] == 80.5
    # Replacing the same rule: the servicer sends no x-http-code, so 200.
    r = await http.post(f"{suite.base}/alerts/configure", json=rule,
                        headers=suite.headers("operator"))
    assert r.status_code == 200 and r.json()["created"] is False


async def test_optional_scalar_unset_is_null(suite, http):
    r = await http.post(f"{suite.base}/alerts/configure", json={"name": "x"},
                        headers=suite.headers("operator"))
    assert r.json()["rule"]["recovery_threshold"] is None


async def test_path_parameters_and_body_star(suite, http):
    r = await http.post(f"{suite.base}/alerts/alt_1/acknowledge", json={"notes": "on it"},
                        headers=suite.headers("operator"))
    assert r.status_code == 200, r.text
    request, _ = suite.servicers["alerts"].last("AcknowledgeAlert")
    assert (request.alert_id, request.notes) == ("alt_1", "on it")
    r = await http.delete(f"{suite.base}/alerts/rules/no%20such", headers=suite.headers("operator"))
    assert r.status_code == 404
    request, _ = suite.servicers["alerts"].last("DeleteAlertRule")
    assert request.name == "no such"


async def test_body_field_silence_with_timestamps(suite, http):
    r = await http.post(f"{suite.base}/alerts/silences", headers=suite.headers("operator"), json={
        "matchers": [{"name": "rule", "value": "high_cpu"}], "starts_at": 1705312800,
        "ends_at": "2024-01-15T12:00:00Z", "comment": "maintenance"})
    assert r.status_code == 200, r.text
    silence = r.json()["silence"]
    assert silence["starts_at"] == "2024-01-15T10:00:00Z"
    assert silence["ends_at"] == "2024-01-15T12:00:00Z"
    assert silence["matchers"] == [{"name": "rule", "value": "high_cpu", "is_regex": False,
                                    "is_negative": False}]


async def test_ingest_answers_202_and_loki_push_at_root(suite, http):
    body = (b'{"logs": [{"level": "info", "service": "web", "message": "hi",\n'
            b'  "metadata": {"user_id": "u1", "n": 3}, "timestamp": 1705312800.25}]}')
    r = await http.post(f"{suite.base}/logs", content=body, headers={
        **suite.headers("operator"), "Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 202 and r.json() == {"accepted": 1, "errors": []}
    # An HttpBody field takes the body as it came: the logs service parses it, once.
    request, _ = suite.servicers["logs"].last("WriteLogsHttp")
    assert request.body.data == body
    assert request.body.content_type == "application/json; charset=utf-8"
    r = await http.post(f"{suite.url}/loki/api/v1/push", headers=suite.headers("operator"), json={
        "streams": [{"stream": {"job": "web"}, "values": [["1705312800000000000", "line"]]}]})
    assert r.status_code == 202 and r.json()["accepted"] == 1
    request, _ = suite.servicers["logs"].last("PushLoki")
    assert dict(request.streams[0].stream) == {"job": "web"}


async def test_prometheus_negotiation_and_gateway_families(suite, http):
    await http.get(f"{suite.base}/logs", headers=suite.headers())
    r = await http.get(f"{suite.base}/metrics/prometheus", headers=suite.headers())
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    request, _ = suite.servicers["metrics"].last("GetPrometheusMetrics")
    assert request.format == "text"
    from prometheus_client.parser import text_string_to_metric_families
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    assert "botserver_requests" in families
    requests = families["botmon_gateway_requests"]
    assert any(s.labels == {"route": "/api/v1/monitoring/logs", "method": "GET",
                            "status": "200"} and s.value >= 1 for s in requests.samples)
    assert families["botmon_gateway_request_duration_seconds"].type == "histogram"
    assert "botmon_gateway_ratelimit_allowed" in families
    assert not any(s.name.startswith("botserver_") for f in families.values()
                   if f.name.startswith("botmon_gateway") for s in f.samples)
    r = await http.get(f"{suite.base}/metrics/prometheus", headers={
        **suite.headers(), "Accept": "application/openmetrics-text; version=1.0.0"})
    assert r.headers["content-type"].startswith("application/openmetrics-text")
    assert r.text.endswith("# EOF\n") and r.text.count("# EOF") == 1
    assert r.text.index("botmon_gateway_requests_total") < r.text.index("# EOF")
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as om
    assert {f.name for f in om(r.text)} >= {"botserver_requests", "botmon_gateway_requests"}


async def test_request_id_round_trip(suite, http):
    r = await http.get(f"{suite.base}/logs", headers={**suite.headers(), "X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    _, metadata = suite.servicers["logs"].last("ListLogs")
    assert metadata["x-request-id"] == "abc-123"
    r = await http.get(f"{suite.base}/logs", headers=suite.headers())
    generated = r.headers["x-request-id"]
    assert len(generated) >= 16
    assert suite.servicers["logs"].last("ListLogs")[1]["x-request-id"] == generated
    r = await http.get(f"{suite.base}/nowhere", headers={"X-Request-ID": "zz-9"})
    assert r.status_code == 404 and r.headers["x-request-id"] == "zz-9"


async def test_repeated_query_values_from_repeats_and_commas(make_settings, http):
    metrics = RecordingMetrics()
    async with Suite(make_settings(), components=(), servicers={"metrics": metrics}) as suite:
        r = await http.get(f"{suite.base}/metrics", headers=suite.headers())
        body = r.json()
        assert body["system"]["network"]["bytes_sent"] == 2**40
        assert body["timestamp"] == "2024-01-15T10:00:00.005Z"
        assert body["system"]["cpu"] is None and body["sample_period_seconds"] == 0
