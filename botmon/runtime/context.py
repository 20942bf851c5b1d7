"""Request id carried from HTTP into gRPC metadata and onto every log record; the caller."""

from __future__ import annotations

import contextvars
import uuid

__all__ = ["REQUEST_ID_HEADER", "caller", "new_request_id", "request_id"]

#: HTTP header and gRPC metadata key that carries the request id.
REQUEST_ID_HEADER = "x-request-id"

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
#: The authenticated caller of the RPC being served (a ``credentials.Principal``), set by
#: the server interceptor; None where no credential is checked.
caller: contextvars.ContextVar = contextvars.ContextVar("caller", default=None)


def new_request_id() -> str:
    """Return a fresh request id."""
    return uuid.uuid4().hex
