"""Evaluation against the real metrics service, fed with request events over gRPC."""

from __future__ import annotations

from botmon.metrics.v1 import metrics_pb2, metrics_service_pb2, metrics_service_pb2_grpc
from services.metrics.__main__ import create_server as create_metrics
from services.metrics.config import MetricsSettings
from tests.alerts.conftest import serve
from tests.conftest import suite_channel
from tests.waiting import eventually


async def test_slow_requests_fire_the_latency_rule(alert_settings, receiver):
    base = alert_settings()
    metrics_server = await create_metrics(base, address="127.0.0.1:0",
                                          metrics_settings=MetricsSettings.from_env({}))
    async with metrics_server:
        settings = alert_settings(metrics_target=f"127.0.0.1:{metrics_server.port}")
        channel = suite_channel(settings.metrics_target, settings)
        events = metrics_service_pb2_grpc.MetricsServiceStub(channel)
        try:
            async with serve(settings) as svc:
                await svc.configure(name="slow_requests", metric="requests.average_latency_ms",
                                    condition="greater_than", threshold=500, severity="error",
                                    notify={"webhook": receiver.url("/hook")})
                await events.RecordEvents(metrics_service_pb2.RecordEventsRequest(events=[
                    metrics_pb2.Event(type="request", method="GET", route="/api/chat",
                                      status=200, duration_ms=900) for _ in range(20)]),
                    timeout=10)
                alert = await eventually(lambda: svc.alert_of("slow_requests", "firing"),
                                         within=15)
                assert alert.current_value >= 500 and alert.metric == "requests.average_latency_ms"
                [request] = await eventually(lambda: receiver.at("/hook"))
                assert request.json["alerts"][0]["labels"]["alertname"] == "slow_requests"
        finally:
            await channel.close()
