"""The shared gRPC server lifecycle, through a real in-process server."""

import asyncio
import gc

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from botmon.debug.v1 import debug_service_pb2, debug_service_pb2_grpc
from botmon.logs.v1 import log_entry_pb2, logs_service_pb2, logs_service_pb2_grpc
from botmon.runtime import errors
from botmon.runtime.context import REQUEST_ID_HEADER, request_id
from botmon.runtime.server import Binding, GrpcServer
from tests.conftest import suite_channel

NAME = "botmon.logs.v1.LogsService"

ERRORS = {
    "invalid": (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    "missing": (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    "exists": (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    "precondition": (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    "denied": (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    "unauthenticated": (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    "exhausted": (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    "unavailable": (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
}


class Servicer(logs_service_pb2_grpc.LogsServiceServicer):
    """ListLogs echoes the request id; `service` picks a domain error; `q=slow` sleeps.
    TailLogs breaks after one response, or with `q=endless` streams until the caller goes."""

    async def ListLogs(self, request, context):
        if request.service in ERRORS:
            raise ERRORS[request.service][0](f"{request.service} happened")
        if request.service == "crash":
            raise RuntimeError("boom")
        if request.service == "store-down":
            raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")
        if request.q == "slow":
            await asyncio.sleep(0.5)
        return logs_service_pb2.ListLogsResponse(next_cursor=request_id.get())

    async def TailLogs(self, request, context):
        if request.q == "endless":
            # Large responses: the caller's flow-control window fills after a few.
            entry = log_entry_pb2.LogEntry(message="x" * 100_000)
            while True:
                yield logs_service_pb2.TailLogsResponse(logs=[entry])
        yield logs_service_pb2.TailLogsResponse(dropped=1)
        raise errors.InvalidArgument("stream broke")


@pytest.fixture
async def server(make_settings):
    srv = GrpcServer("logs", make_settings(), [
        Binding(NAME, Servicer(), logs_service_pb2_grpc.add_LogsServiceServicer_to_server)],
        address="127.0.0.1:0", register=False)
    async with srv:
        yield srv


@pytest.fixture
async def channel(server):
    async with suite_channel(f"127.0.0.1:{server.port}", server.settings) as ch:
        yield ch


@pytest.mark.parametrize("name", sorted(ERRORS))
async def test_domain_errors_map_to_status_codes(channel, name):
    stub = logs_service_pb2_grpc.LogsServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ListLogs(logs_service_pb2.ListLogsRequest(service=name), timeout=5)
    assert info.value.code() == ERRORS[name][1]
    assert info.value.details() == f"{name} happened"


async def test_unexpected_errors_are_internal_and_unimplemented_is_clean(channel):
    stub = logs_service_pb2_grpc.LogsServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ListLogs(logs_service_pb2.ListLogsRequest(service="crash"), timeout=5)
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert "boom" not in info.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetErrorSummary(logs_service_pb2.GetErrorSummaryRequest(), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "GetErrorSummary" in info.value.details()


async def test_streaming_errors_are_mapped_after_partial_output(channel):
    stub = logs_service_pb2_grpc.LogsServiceStub(channel)
    call = stub.TailLogs(logs_service_pb2.TailLogsRequest(), timeout=5)
    received = []
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for item in call:
            received.append(item)
    assert [r.dropped for r in received] == [1]
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_stream_abandoned_by_its_caller_is_closed_without_errors(channel):
    # The handler is cancelled while it waits to send (the caller reads no more), with the
    # response generators suspended at a yield: the event loop's async-generator finaliser
    # closes them later, in another context, where the call's caller and request id (context
    # variables set in the handler's) cannot be reset.
    loop = asyncio.get_running_loop()
    reported: list[dict] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        stub = logs_service_pb2_grpc.LogsServiceStub(channel)
        call = stub.TailLogs(logs_service_pb2.TailLogsRequest(q="endless"), timeout=10)
        assert (await call.read()).logs
        call.cancel()
        for _ in range(20):  # the cancellation reaches the server; the generators are freed
            await asyncio.sleep(0.05)
            gc.collect()
    finally:
        loop.set_exception_handler(previous)
    assert not reported, [(c["message"], c.get("exception")) for c in reported]
    reply = await stub.ListLogs(logs_service_pb2.ListLogsRequest(), timeout=5)
    assert reply.next_cursor


async def test_request_id_travels_in_metadata(channel):
    stub = logs_service_pb2_grpc.LogsServiceStub(channel)
    reply = await stub.ListLogs(logs_service_pb2.ListLogsRequest(), timeout=5,
                                metadata=((REQUEST_ID_HEADER, "req-abc"),))
    assert reply.next_cursor == "req-abc"
    generated = await stub.ListLogs(logs_service_pb2.ListLogsRequest(), timeout=5)
    assert len(generated.next_cursor) == 32


async def test_health_protocol_and_readiness_switch(server, channel):
    health = health_pb2_grpc.HealthStub(channel)
    for name in ("", NAME):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    watch = health.Watch(health_pb2.HealthCheckRequest(service=NAME), timeout=5)
    assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
    await server.set_serving(False)
    assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
    watch.cancel()


async def test_reflection_lists_the_services(server):
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        db = ProtoReflectionDescriptorDatabase(ch)
        names = await asyncio.to_thread(db.get_services)
    assert {NAME, "grpc.health.v1.Health", "botmon.debug.v1.DebugService"} <= set(names)


async def test_debug_info_reports_real_process_figures(channel):
    # The server runs in this process: a collection here is one it must count.
    gc.collect()
    reply = await debug_service_pb2_grpc.DebugServiceStub(channel).GetDebugInfo(
        debug_service_pb2.GetDebugInfoRequest(), timeout=5)
    assert reply.service == "logs"
    assert reply.debug.goroutines >= 1
    assert reply.debug.open_files > 0
    assert reply.debug.gc_runs >= 1
    assert reply.debug.settings["BOTMON_HTTP_ADDR"] == "127.0.0.1:8080"


async def test_graceful_stop_drains_in_flight_calls(make_settings):
    srv = GrpcServer("logs", make_settings(), [
        Binding(NAME, Servicer(), logs_service_pb2_grpc.add_LogsServiceServicer_to_server)],
        address="127.0.0.1:0", register=False, grace=3)
    await srv.start()
    async with suite_channel(f"127.0.0.1:{srv.port}", srv.settings) as ch:
        stub = logs_service_pb2_grpc.LogsServiceStub(ch)
        slow = asyncio.ensure_future(
            stub.ListLogs(logs_service_pb2.ListLogsRequest(q="slow"), timeout=5))
        await asyncio.sleep(0.1)
        await srv.stop()
        assert (await slow).next_cursor, "the in-flight call completed during the drain"
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.ListLogs(logs_service_pb2.ListLogsRequest(), timeout=1)
        assert info.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


async def test_an_unreachable_dependency_is_unavailable_not_internal(channel):
    stub = logs_service_pb2_grpc.LogsServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ListLogs(logs_service_pb2.ListLogsRequest(service="store-down"), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "ConnectionRefusedError" in info.value.details()
