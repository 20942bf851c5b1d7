"""The metrics routes through the gateway: documented field names, ingest, validation."""

from __future__ import annotations

import time

import httpx

from botmon.logs.v1 import log_entry_pb2, logs_service_pb2
from botmon.metrics.v1 import metrics_service_pb2
from tests.harness import Suite


async def test_metrics_routes_through_the_gateway(make_settings):
    async with Suite(make_settings(), components=("metrics",)) as suite, \
            httpx.AsyncClient(base_url=suite.base, timeout=10) as http:
        events = {"events": [
            {"type": "request", "method": "GET", "route": "/chat", "status": 200,
             "duration_ms": 120},
            {"type": "request", "method": "GET", "route": "/chat", "status": 502,
             "duration_ms": 80},
            {"type": "session_started", "session_id": "s1"},
            {"type": "conversation_completed", "conversation_id": "c1", "messages": 6},
        ]}
        denied = await http.post("/metrics/events", json=events, headers=suite.headers("viewer"))
        assert denied.status_code == 403
        stored = await http.post("/metrics/events", json=events,
                                 headers=suite.headers("operator"))
        assert stored.status_code == 202, stored.text
        assert stored.json()["accepted"] == 4

        system = (await http.get("/metrics", headers=suite.headers())).json()
        assert set(system["system"]) == {"cpu", "memory", "disk", "network"}
        assert {"usage_percent", "cores", "load_average"} <= set(system["system"]["cpu"])
        assert "free_percent" in system["system"]["disk"]
        assert system["timestamp"].endswith("Z")

        app = (await http.get("/metrics/application", headers=suite.headers())).json()
        application = app["application"]
        assert application["requests"]["total"] == 2
        assert application["sessions"]["active"] == 1
        assert application["conversations"]["completed_today"] == 1
        assert application["errors"]["source"] == "requests"

        perf = await http.get("/metrics/performance", params={"period": "1h"},
                              headers=suite.headers())
        assert perf.status_code == 200
        body = perf.json()
        assert (body["period"], body["resolution"], len(body["series"])) == ("1h", "minute", 60)
        assert set(body["performance"]) == {"response_times", "throughput", "error_rates"}
        assert set(body["series"][-1]) >= {"timestamp", "p50", "p95", "p99",
                                           "requests_per_second", "error_rate"}

        bad = await http.get("/metrics/performance", params={"period": "30d",
                                                              "resolution": "minute"},
                             headers=suite.headers())
        assert bad.status_code == 400
        assert "allowed: hour, day" in bad.json()["error"]["message"]

        exposition = await http.get("/metrics/prometheus", headers=suite.headers())
        assert exposition.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert 'botserver_requests_total{method="GET",status="200"} 1.0' in exposition.text

        grafana = (await http.get("/metrics/grafana", headers=suite.headers())).json()
        assert grafana["dashboard"]["title"] == "BotServer Monitoring"


async def test_errors_come_from_error_logs_when_the_logs_service_answers(make_settings):
    async with Suite(make_settings(), components=("metrics", "logs"), gateway=False) as suite:
        backends = suite.servers["metrics"].backends
        written = time.time()
        entries = [log_entry_pb2.LogEntry(level=level, service="web", message=f"m{i}")
                   for i, level in enumerate(("error", "error", "info", "error"))]
        await backends.stub("logs").WriteLogs(logs_service_pb2.WriteLogsRequest(logs=entries),
                                              timeout=5)
        reply = await backends.stub("metrics").GetApplicationMetrics(
            metrics_service_pb2.GetApplicationMetricsRequest(), timeout=10)
    errors = reply.application.errors
    assert (errors.source, errors.total, errors.rate_per_hour) == ("logs", 3, 3.0)
    assert abs(errors.last_error.ToNanoseconds() / 1e9 - written) < 5
