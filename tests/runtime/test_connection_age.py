"""Servers end connections after BOTMON_GRPC_MAX_CONNECTION_AGE, so clients re-resolve.

On Kubernetes, clients dial ``dns:///<svc>…`` over a headless Service; gRPC resolves the
name again when a connection closes, so a GOAWAY at the connection's age is what lets
replicas added since the client connected receive traffic.
"""

import asyncio

from botmon.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from botmon.runtime.server import Binding, GrpcServer
from tests.conftest import suite_channel


class Peer(logs_service_pb2_grpc.LogsServiceServicer):
    """ListLogs answers with the caller's address; TailLogs streams 8 replies over 2 s."""

    async def ListLogs(self, request, context):
        return logs_service_pb2.ListLogsResponse(next_cursor=context.peer())

    async def TailLogs(self, request, context):
        for i in range(8):
            await asyncio.sleep(0.25)
            yield logs_service_pb2.TailLogsResponse(dropped=i)


async def test_a_connection_is_replaced_after_its_age_and_open_streams_finish(make_settings):
    server = GrpcServer("logs", make_settings(grpc_max_connection_age=0.5), [
        Binding("botmon.logs.v1.LogsService", Peer(),
                logs_service_pb2_grpc.add_LogsServiceServicer_to_server)],
        address="127.0.0.1:0", register=False)
    async with server:
        channel = suite_channel(f"dns:///localhost:{server.port}", server.settings)
        try:
            stub = logs_service_pb2_grpc.LogsServiceStub(channel)
            tail = stub.TailLogs(logs_service_pb2.TailLogsRequest(), timeout=10)
            first = (await stub.ListLogs(logs_service_pb2.ListLogsRequest(), timeout=5)).next_cursor
            peers = {first}
            for _ in range(40):  # eventually, within a generous 10 s
                await asyncio.sleep(0.25)
                reply = await stub.ListLogs(logs_service_pb2.ListLogsRequest(), timeout=5)
                peers.add(reply.next_cursor)
                if len(peers) > 1:
                    break
            assert len(peers) > 1, f"one connection served every call: {peers}"
            # The stream opened on the first connection was not cut by its GOAWAY.
            assert [reply.dropped async for reply in tail] == list(range(8))
        finally:
            await channel.close()
