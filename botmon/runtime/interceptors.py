"""Server interceptor: the caller's credential and role, request ids, domain errors.

Every RPC outside :data:`roles.OPEN_SERVICES` needs ``authorization: Bearer
<token>`` metadata checked by :class:`Credentials` and a role at least the one
:mod:`botmon.runtime.roles` gives the RPC. Identity metadata is believed only
from a holder of the internal credential.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import logging
from urllib.parse import unquote

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from botmon.runtime.config import ROLES
from botmon.runtime.context import REQUEST_ID_HEADER, caller, new_request_id, request_id
from botmon.runtime.credentials import (
    INTERNAL_SUBJECT,
    ROLE_HEADER,
    SUBJECT_HEADER,
    CredentialError,
    Credentials,
    Principal,
    bearer_token,
)
from botmon.runtime.decoding import checked
from botmon.runtime.errors import UNREACHABLE, BotmonError
from botmon.runtime.roles import OPEN_SERVICES, required_role

__all__ = ["ServerInterceptor"]

log = logging.getLogger("botmon.rpc")
#: The trailing metadata key of a serialized ``google.rpc.Status`` (gRPC's rich errors).
STATUS_DETAILS_KEY = "grpc-status-details-bin"


class _Refused(Exception):
    def __init__(self, code: grpc.StatusCode, message: str):
        self.code = code
        self.message = message


class ServerInterceptor(grpc.aio.ServerInterceptor):
    """Authenticates and authorizes the caller, binds its request id, maps :class:`BotmonError`.

    ``credentials=None`` checks nothing (a benchmark's baseline); every served port
    passes the process's credentials.
    """

    def __init__(self, credentials: Credentials | None = None):
        self.credentials = credentials

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        rid = authorization = subject = role = None
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization":
                authorization = value
            elif key == REQUEST_ID_HEADER:
                rid = value
            elif key == SUBJECT_HEADER:
                subject = value
            elif key == ROLE_HEADER:
                role = value
        principal = None
        if self.credentials is not None \
                and method[1:method.find("/", 1)] not in OPEN_SERVICES:
            try:
                principal = self._authorize(method, bearer_token(authorization), subject, role)
            except _Refused as refused:
                return _refusing(handler, refused)
        rid = rid or new_request_id()
        handler = checked(handler)
        if handler.unary_unary:
            return handler._replace(unary_unary=_unary(handler.unary_unary, rid, principal,
                                                       method))
        if handler.stream_unary:
            return handler._replace(stream_unary=_unary(handler.stream_unary, rid, principal,
                                                        method))
        if handler.unary_stream:
            return handler._replace(unary_stream=_streaming(handler.unary_stream, rid,
                                                            principal, method))
        return handler._replace(stream_stream=_streaming(handler.stream_stream, rid, principal,
                                                         method))

    def _authorize(self, method: str, token: str | None, subject: str | None,
                   role: str | None) -> Principal:
        assert self.credentials is not None
        if self.credentials.is_internal(token):
            # The suite's own processes: the gateway names the caller it acts for.
            principal = Principal(unquote(subject) if subject else INTERNAL_SUBJECT,
                                  role if role in ROLES else "admin")
        else:
            try:
                principal = self.credentials.authenticate(token)
            except CredentialError as exc:
                raise _Refused(grpc.StatusCode.UNAUTHENTICATED, exc.message) from None
        needed = required_role(method)
        if needed is None:
            raise _Refused(grpc.StatusCode.PERMISSION_DENIED,
                           f"{method} has no role in botmon.runtime.roles; it is refused")
        if not principal.allows(needed):
            raise _Refused(grpc.StatusCode.PERMISSION_DENIED,
                           f"role {principal.role!r} may not call {method}; it needs "
                           f"{needed!r} or higher")
        return principal


def _refusing(handler: grpc.RpcMethodHandler, refused: _Refused) -> grpc.RpcMethodHandler:
    """``handler`` with its behaviour replaced by the refusal (same kind, same codecs)."""

    async def refuse(request, context):
        await context.abort(refused.code, refused.message)

    kind = next(k for k in ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
                if getattr(handler, k))
    return handler._replace(**{kind: refuse})


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


def _unary(behavior, rid: str, principal: Principal | None, method: str):
    async def wrapper(request, context):
        token = request_id.set(rid)
        who = caller.set(principal)
        try:
            return await behavior(request, context)
        except Exception as exc:
            if isinstance(exc, grpc.aio.AbortError):
                raise
            await _fail(context, exc, method)
        finally:
            caller.reset(who)
            request_id.reset(token)
    return wrapper


def _restore(var: contextvars.ContextVar, token: contextvars.Token) -> None:
    # A response stream abandoned by its caller is closed later by the event loop's
    # async-generator finaliser, in another context: there is nothing to restore there.
    with contextlib.suppress(ValueError):
        var.reset(token)


def _streaming(behavior, rid: str, principal: Principal | None, method: str):
    if not inspect.isasyncgenfunction(behavior):
        return _unary(behavior, rid, principal, method)

    async def wrapper(request, context):
        token = request_id.set(rid)
        who = caller.set(principal)
        try:
            async for response in behavior(request, context):
                yield response
        except Exception as exc:
            if isinstance(exc, grpc.aio.AbortError):
                raise
            await _fail(context, exc, method)
        finally:
            _restore(caller, who)
            _restore(request_id, token)
    return wrapper
