"""Request bytes that do not decode become INVALID_ARGUMENT with a plain message.

gRPC answers a request whose deserializer raises with UNKNOWN and the parser's
own text (``Exceeded upb_DecodeOptions_MaxDepth``). The server interceptor
passes every method handler through :func:`checked` instead: its deserializer
hands the method an :class:`Undecodable` in place of the message, and the method
raises that as the domain error the interceptor maps like any other.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from botmon.runtime.errors import InvalidArgument

__all__ = ["MAX_PROTOBUF_DEPTH", "Undecodable", "checked"]

#: Message nesting at which protobuf's decoder (upb) stops.
MAX_PROTOBUF_DEPTH = 100


class Undecodable:
    """Stands for a request message that could not be decoded."""

    __slots__ = ("error",)

    def __init__(self, error: InvalidArgument):
        self.error = error


def _problem(type_name: str, exc: Exception) -> InvalidArgument:
    if "MaxDepth" in str(exc):
        return InvalidArgument(f"the request nests messages more than {MAX_PROTOBUF_DEPTH} "
                               f"levels deep, protobuf's limit (each level of JSON in a Struct "
                               f"takes three); flatten it")
    return InvalidArgument(f"the request is not a valid {type_name}: the protobuf is truncated "
                           "or corrupt")


def _lenient(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """``deserializer`` returning an :class:`Undecodable` instead of raising."""
    if deserializer is None:
        return None
    owner = getattr(deserializer, "__self__", None)
    type_name = getattr(getattr(owner, "DESCRIPTOR", None), "full_name", "request message")

    def decode(data: bytes) -> Any:
        try:
            return deserializer(data)
        except (DecodeError, RuntimeError, ValueError) as exc:
            return Undecodable(_problem(type_name, exc))

    return decode


def _check(request: Any) -> Any:
    """``request`` itself; raises the decoding problem of an :class:`Undecodable`."""
    if type(request) is Undecodable:
        raise request.error
    return request


async def _checked_stream(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """The messages of a request stream, raising at the first that did not decode."""
    async for request in requests:
        yield _check(request)


def _wrap(behavior: Callable, convert: Callable[[Any], Any]) -> Callable:
    """``behavior`` called with ``convert(request)``, of the same kind (an async generator
    stays one, since the interceptor tells streaming handlers by that)."""
    if inspect.isasyncgenfunction(behavior):
        async def stream(request, context):
            async for reply in behavior(convert(request), context):
                yield reply
        return stream

    async def call(request, context):
        return await behavior(convert(request), context)
    return call


def checked(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """``handler`` whose method raises INVALID_ARGUMENT for request bytes that do not decode."""
    convert = _checked_stream if handler.request_streaming else _check
    kind = next(k for k in ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
                if getattr(handler, k))
    return handler._replace(request_deserializer=_lenient(handler.request_deserializer),
                            **{kind: _wrap(getattr(handler, kind), convert)})
