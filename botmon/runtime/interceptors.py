"""Server interceptor: request ids into the context, domain errors into gRPC status."""

from __future__ import annotations

import inspect
import logging

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from botmon.runtime.context import REQUEST_ID_HEADER, new_request_id, request_id
from botmon.runtime.decoding import checked
from botmon.runtime.errors import UNREACHABLE, BotmonError

__all__ = ["ServerInterceptor"]

log = logging.getLogger("botmon.rpc")
#: The trailing metadata key of a serialized ``google.rpc.Status`` (gRPC's rich errors).
STATUS_DETAILS_KEY = "grpc-status-details-bin"


class ServerInterceptor(grpc.aio.ServerInterceptor):
    """Binds the caller's request id and maps :class:`BotmonError` to its status code."""

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        rid = dict(handler_call_details.invocation_metadata or ()).get(REQUEST_ID_HEADER) \
            or new_request_id()
        method = handler_call_details.method
        handler = checked(handler)
        if handler.unary_unary:
            return handler._replace(unary_unary=_unary(handler.unary_unary, rid, method))
        if handler.stream_unary:
            return handler._replace(stream_unary=_unary(handler.stream_unary, rid, method))
        if handler.unary_stream:
            return handler._replace(unary_stream=_streaming(handler.unary_stream, rid, method))
        return handler._replace(stream_stream=_streaming(handler.stream_stream, rid, method))


def _rich_status(exc: BotmonError) -> bytes:
    """``exc`` as a serialized ``google.rpc.Status`` whose BadRequest names each bad field."""
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.BadRequest(field_violations=[
        error_details_pb2.BadRequest.FieldViolation(field=field, description=description)
        for field, description in exc.violations]))
    return status_pb2.Status(code=exc.code.value[0], message=exc.message,
                             details=[detail]).SerializeToString()


async def _fail(context: grpc.aio.ServicerContext, exc: Exception, method: str) -> None:
    if isinstance(exc, BotmonError):
        if exc.violations:
            context.set_trailing_metadata(((STATUS_DETAILS_KEY, _rich_status(exc)),))
        await context.abort(exc.code, exc.message)
    if isinstance(exc, UNREACHABLE):
        log.warning("dependency unreachable in %s: %s: %s", method, type(exc).__name__, exc)
        await context.abort(grpc.StatusCode.UNAVAILABLE,
                            f"a dependency of {method} is unreachable ({type(exc).__name__}); "
                            "retry later")
    if isinstance(exc, NotImplementedError):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented yet")
    log.exception("unhandled error in %s", method)
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method}; see the service log")


def _unary(behavior, rid: str, method: str):
    async def wrapper(request, context):
        token = request_id.set(rid)
        try:
            return await behavior(request, context)
        except Exception as exc:
            if isinstance(exc, grpc.aio.AbortError):
                raise
            await _fail(context, exc, method)
        finally:
            request_id.reset(token)
    return wrapper


def _streaming(behavior, rid: str, method: str):
    if not inspect.isasyncgenfunction(behavior):
        return _unary(behavior, rid, method)

    async def wrapper(request, context):
        token = request_id.set(rid)
        try:
            async for response in behavior(request, context):
                yield response
        except Exception as exc:
            if isinstance(exc, grpc.aio.AbortError):
                raise
            await _fail(context, exc, method)
        finally:
            request_id.reset(token)
    return wrapper
