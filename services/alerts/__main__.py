"""The alerts service: wiring only."""

from __future__ import annotations

from botmon.alerts.v1 import alerts_service_pb2, alerts_service_pb2_grpc
from botmon.runtime.config import Settings
from botmon.runtime.main import run_service
from botmon.runtime.server import Binding, GrpcServer

SERVICE_NAME = alerts_service_pb2.DESCRIPTOR.services_by_name["AlertsService"].full_name


async def create_server(settings: Settings, *, address: str | None = None) -> GrpcServer:
    """Build the alerts service's server (not started)."""
    servicer = alerts_service_pb2_grpc.AlertsServiceServicer()
    return GrpcServer("alerts", settings, [
        Binding(SERVICE_NAME, servicer, alerts_service_pb2_grpc.add_AlertsServiceServicer_to_server),
    ], address=address)


if __name__ == "__main__":
    run_service("alerts", create_server)
