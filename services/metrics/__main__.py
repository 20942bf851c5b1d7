"""The metrics service: wiring only."""

from __future__ import annotations

from botmon.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from botmon.runtime.config import Settings
from botmon.runtime.main import run_service
from botmon.runtime.server import Binding, GrpcServer

SERVICE_NAME = metrics_service_pb2.DESCRIPTOR.services_by_name["MetricsService"].full_name


async def create_server(settings: Settings, *, address: str | None = None) -> GrpcServer:
    """Build the metrics service's server (not started)."""
    servicer = metrics_service_pb2_grpc.MetricsServiceServicer()
    return GrpcServer("metrics", settings, [
        Binding(SERVICE_NAME, servicer, metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server),
    ], address=address)


if __name__ == "__main__":
    run_service("metrics", create_server)
