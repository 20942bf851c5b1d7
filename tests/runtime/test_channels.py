"""Channels to the suite's services (botmon.runtime.channels)."""

import dataclasses
from collections.abc import AsyncIterator

import grpc
import pytest

from botmon.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from botmon.runtime.channels import Backends, open_channel
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


async def test_every_kind_of_call_carries_the_bearer_token_beside_the_callers_metadata():
    """open_channel(token=…) sends ``authorization: Bearer <token>`` on unary, server-,
    client- and bidirectional-streaming calls, after the metadata the caller passed."""
    seen: list[tuple[str, list[tuple[str, str]]]] = []

    def record(kind: str, context: grpc.aio.ServicerContext) -> bytes:
        seen.append((kind, [(k, v) for k, v in context.invocation_metadata()
                            if k in ("authorization", "x-caller")]))
        return b"ok"

    async def unary(request, context):
        return record("unary", context)

    async def server_stream(request, context):
        yield record("server-stream", context)

    async def client_stream(requests, context):
        async for _ in requests:
            pass
        return record("client-stream", context)

    async def bidi(requests, context):
        async for _ in requests:
            yield record("bidi", context)

    def same(payload):
        return payload

    handler = grpc.method_handlers_generic_handler("test.Echo", {
        "Unary": grpc.unary_unary_rpc_method_handler(unary, same, same),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream, same, same),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream, same, same),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi, same, same)})
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    caller = (("x-caller", "test"),)

    async def one() -> AsyncIterator[bytes]:
        yield b"x"

    try:
        async with open_channel(f"127.0.0.1:{port}", token="t0ken") as channel:
            await channel.unary_unary("/test.Echo/Unary")(b"x", metadata=caller, timeout=5)
            async for _ in channel.unary_stream("/test.Echo/ServerStream")(
                    b"x", metadata=caller, timeout=5):
                pass
            await channel.stream_unary("/test.Echo/ClientStream")(one(), metadata=caller,
                                                                  timeout=5)
            async for _ in channel.stream_stream("/test.Echo/Bidi")(one(), metadata=caller,
                                                                    timeout=5):
                pass
            # No metadata of the caller's own: the token alone.
            await channel.unary_unary("/test.Echo/Unary")(b"x", timeout=5)
    finally:
        await server.stop(None)
    both = [("x-caller", "test"), ("authorization", "Bearer t0ken")]
    assert seen == [("unary", both), ("server-stream", both), ("client-stream", both),
                    ("bidi", both), ("unary", [("authorization", "Bearer t0ken")])]
