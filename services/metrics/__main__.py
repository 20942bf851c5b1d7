"""The metrics service: wiring only."""

from __future__ import annotations

from botmon.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from botmon.runtime.config import Settings
from botmon.runtime.main import run_service
from botmon.runtime.server import Binding, GrpcServer
from services.metrics.config import MetricsSettings
from services.metrics.service import Metrics
from services.metrics.servicer import MetricsServicer

SERVICE_NAME = metrics_service_pb2.DESCRIPTOR.services_by_name["MetricsService"].full_name


async def create_server(settings: Settings, *, address: str | None = None,
                        metrics_settings: MetricsSettings | None = None) -> GrpcServer:
    """Build the metrics service's server (its store opened and collector sampling)."""
    ms = metrics_settings or MetricsSettings.from_env()
    servicer = MetricsServicer(None)
    server = GrpcServer("metrics", settings, [
        Binding(SERVICE_NAME, servicer, metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server),
    ], address=address, extra_settings=(ms,))
    metrics = Metrics(settings, ms, server.backends)
    servicer.metrics = metrics
    server.details = lambda: {"store": metrics.store.__class__.__name__,
                              "fanout": "redis" if settings.redis_url else "local",
                              "fanout_channel": metrics.fanout.channel,
                              "ingest_transactions": metrics.ingestor.transactions,
                              "figure_refreshes": metrics.snapshot.refreshes,
                              "error_fetches": metrics.errors.fetches,
                              "stream_subscribers": len(metrics.hub.subscriptions)}
    await metrics.start()
    server.on_stop.append(metrics.stop)
    return server


if __name__ == "__main__":
    run_service("metrics", create_server)
