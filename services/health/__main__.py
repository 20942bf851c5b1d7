"""The health service: wiring only."""

from __future__ import annotations

from botmon.health.v1 import health_service_pb2, health_service_pb2_grpc
from botmon.runtime.config import Settings
from botmon.runtime.main import run_service
from botmon.runtime.server import Binding, GrpcServer

SERVICE_NAME = health_service_pb2.DESCRIPTOR.services_by_name["HealthService"].full_name


async def create_server(settings: Settings, *, address: str | None = None) -> GrpcServer:
    """Build the health service's server (not started)."""
    servicer = health_service_pb2_grpc.HealthServiceServicer()
    return GrpcServer("health", settings, [
        Binding(SERVICE_NAME, servicer, health_service_pb2_grpc.add_HealthServiceServicer_to_server),
    ], address=address)


if __name__ == "__main__":
    run_service("health", create_server)
