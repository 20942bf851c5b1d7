"""Request bytes that do not decode become INVALID_ARGUMENT with a plain message.

gRPC answers a request whose deserializer raises with UNKNOWN and the parser's
own text (``Exceeded upb_DecodeOptions_MaxDepth``). The server interceptor
wraps every deserializer with :func:`lenient` instead, which hands the method
an :class:`Undecodable` in place of the message, and :func:`check` turns it into
the domain error that the interceptor maps like any other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from google.protobuf.message import DecodeError

from botmon.runtime.errors import InvalidArgument

__all__ = ["MAX_PROTOBUF_DEPTH", "Undecodable", "check", "checked_stream", "lenient"]

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


def lenient(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
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


def check(request: Any) -> Any:
    """``request`` itself; raises the decoding problem of an :class:`Undecodable`."""
    if type(request) is Undecodable:
        raise request.error
    return request


async def checked_stream(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """The messages of a request stream, raising at the first that did not decode."""
    async for request in requests:
        yield check(request)
