"""The logs service: wiring only."""

from __future__ import annotations

from botmon.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from botmon.runtime.config import Settings
from botmon.runtime.main import run_service
from botmon.runtime.server import Binding, GrpcServer

SERVICE_NAME = logs_service_pb2.DESCRIPTOR.services_by_name["LogsService"].full_name


async def create_server(settings: Settings, *, address: str | None = None) -> GrpcServer:
    """Build the logs service's server (not started)."""
    servicer = logs_service_pb2_grpc.LogsServiceServicer()
    return GrpcServer("logs", settings, [
        Binding(SERVICE_NAME, servicer, logs_service_pb2_grpc.add_LogsServiceServicer_to_server),
    ], address=address)


if __name__ == "__main__":
    run_service("logs", create_server)
