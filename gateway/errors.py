"""Every gateway error as Google's REST error body, and gRPC status -> HTTP (CONTRACT.md §5)."""

from __future__ import annotations

import logging
from typing import Any

import grpc
from google.rpc import status_pb2
from sanic import Request
from sanic.exceptions import SanicException
from sanic.response import HTTPResponse, json, raw

from botmon.runtime.errors import BotmonError
from gateway.rpcdetails import bad_request, rpc_details

__all__ = ["HTTP_STATUS", "GatewayError", "error_response", "from_rpc_error", "render_exception"]

log = logging.getLogger("botmon.gateway")

#: gRPC code -> HTTP status, as grpc-gateway maps them; anything else is 500.
HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 412,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}

# HTTP statuses the gateway raises itself, with the gRPC code name they stand for.
_HTTP_CODE_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                    404: "NOT_FOUND", 405: "UNIMPLEMENTED", 408: "DEADLINE_EXCEEDED",
                    409: "ALREADY_EXISTS", 412: "FAILED_PRECONDITION", 413: "INVALID_ARGUMENT",
                    415: "INVALID_ARGUMENT", 416: "OUT_OF_RANGE", 429: "RESOURCE_EXHAUSTED",
                    431: "INVALID_ARGUMENT",
                    501: "UNIMPLEMENTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


class GatewayError(Exception):
    """An error the gateway answers with; ``headers`` go onto the response."""

    def __init__(self, status: int, message: str, *, code: str | None = None,
                 details: list[Any] | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or _HTTP_CODE_NAMES.get(status, "UNKNOWN" if status < 500 else "INTERNAL")
        self.details = details or []
        self.headers = headers or {}


#: Routes whose protobuf requests get a protobuf ``google.rpc.Status`` as the error body,
#: as OTLP/HTTP requires; every other error is JSON.
PROTOBUF_ERRORS = frozenset({"/v1/logs"})


def error_response(error: GatewayError, request: Request | None = None) -> HTTPResponse:
    if request is not None and request.path in PROTOBUF_ERRORS and \
            (request.headers.get("content-type") or "").startswith("application/x-protobuf"):
        code = getattr(grpc.StatusCode, error.code, grpc.StatusCode.UNKNOWN).value[0]
        status = status_pb2.Status(code=code, message=error.message)
        return raw(status.SerializeToString(), status=error.status, headers=error.headers,
                   content_type="application/x-protobuf")
    body = {"error": {"code": error.status, "status": error.code, "message": error.message,
                      "details": error.details}}
    return json(body, status=error.status, headers=error.headers)


def from_rpc_error(exc: grpc.aio.AioRpcError, component: str) -> GatewayError:
    """Map a failed backend call; connection failures name the service that is down."""
    code = exc.code()
    status = HTTP_STATUS.get(code, 500)
    message = exc.details() or code.name
    if code == grpc.StatusCode.UNAVAILABLE:
        message = f"the {component} service is unavailable: {message}"
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
        message = f"the {component} service did not answer in time: {message}"
    elif code == grpc.StatusCode.UNIMPLEMENTED:
        message = f"not implemented yet by the {component} service: {message}"
    elif status == 500:
        log.warning("backend error", extra={"service": component, "grpc_code": code.name,
                                            "detail": message})
    return GatewayError(status, message, code=code.name, details=rpc_details(exc))


def render_exception(request: Request, exc: Exception) -> HTTPResponse:
    """The app's one exception handler: every failure in the error format, never HTML."""
    if isinstance(exc, GatewayError):
        return error_response(exc, request)
    if isinstance(exc, BotmonError):
        details = [bad_request(exc.field, exc.message)] if exc.field else None
        return error_response(GatewayError(HTTP_STATUS.get(exc.code, 500), exc.message,
                                           code=exc.code.name, details=details), request)
    if isinstance(exc, SanicException) and exc.status_code < 500 or \
            isinstance(exc, SanicException) and exc.status_code in (501, 503):
        status = exc.status_code
        message = str(exc) or exc.message
        if status == 404:
            message = f"no route for {request.method} {request.path}"
        elif status == 405:
            message = f"method {request.method} is not allowed on {request.path}"
        elif status == 413 and "header" in message.lower():
            # Sanic says 413 for an oversized head too; RFC 6585 has its own status for it.
            status = 431
            message = (f"request line and headers too large; the limit is "
                       f"{request.app.config.REQUEST_MAX_HEADER_SIZE} bytes for both together: "
                       "shorten the URL, the token or the other headers")
        elif status == 413:
            message = (f"request body too large; the limit is "
                       f"{request.app.config.REQUEST_MAX_SIZE} bytes")
        headers = dict(getattr(exc, "headers", None) or {})
        return error_response(GatewayError(status, message, headers=headers), request)
    log.error("unhandled error on %s %s", request.method, request.path, exc_info=exc)
    return error_response(GatewayError(500, "internal error in the gateway; see its log",
                                       code="INTERNAL"), request)
