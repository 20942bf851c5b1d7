"""Channels to the suite's services (botmon.runtime.channels)."""

import dataclasses

import grpc
import pytest

from botmon.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from botmon.runtime.channels import Backends
from botmon.runtime.server import Binding, GrpcServer
from tests.conftest import free_port


class Logs(logs_service_pb2_grpc.LogsServiceServicer):
    async def ListLogs(self, request, context):
        return logs_service_pb2.ListLogsResponse(total=7)


async def test_a_refusal_seen_by_another_channel_does_not_fail_a_new_one(make_settings):
    """A backend that starts on an address another client found closed a moment ago
    answers a new client at once; it does not inherit that client's reconnect backoff."""
    port = free_port()
    settings = dataclasses.replace(make_settings(), logs_target=f"127.0.0.1:{port}")
    early = Backends(settings)
    try:
        # Refused repeatedly, the early client's reconnect backoff grows towards its cap.
        for _ in range(8):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await early.stub("logs").ListLogs(logs_service_pb2.ListLogsRequest(), timeout=2)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        server = GrpcServer("logs", settings, [
            Binding("botmon.logs.v1.LogsService", Logs(),
                    logs_service_pb2_grpc.add_LogsServiceServicer_to_server)],
            address=f"127.0.0.1:{port}", register=False)
        async with server:
            late = Backends(settings)
            try:
                reply = await late.stub("logs").ListLogs(logs_service_pb2.ListLogsRequest(),
                                                         timeout=2)
                assert reply.total == 7
            finally:
                await late.close()
    finally:
        await early.close()
