"""HTTP handlers: the generic transcoded RPC call, and the few routes with gateway business.

Special cases are keyed by RPC name in :data:`SPECIAL`; every other annotated
RPC is served by :func:`rpc_handler` alone.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import quote

import grpc
import orjson
from google.protobuf.message import Message
from sanic import Request
from sanic.response import HTTPResponse, json, raw

from botmon import __version__
from botmon.logs.v1 import logs_service_pb2
from botmon.runtime.channels import call_metadata
from botmon.runtime.credentials import ROLE_HEADER, SUBJECT_HEADER
from gateway.clients import Clients
from gateway.debuginfo import gather_debug_info
from gateway.errors import from_rpc_error
from gateway.health_json import CONTENT_TYPE, health_json, http_status, wants_health_json
from gateway.snapshot import HealthView
from gateway.transcoding import Route, http_body, render

__all__ = ["GENERIC", "SPECIAL", "Special", "caller_pairs", "live", "ready", "rpc_handler"]

Prepare = Callable[[Request, Message], None]
Finish = Callable[[Request, Route, Message, int], HTTPResponse]
Local = Callable[[Request, Route], HTTPResponse | None]


class Special(NamedTuple):
    """How one route differs from the generic transcoded call."""

    #: Serves the route instead of :func:`rpc_handler`.
    handler: Callable[..., Awaitable[HTTPResponse]] | None = None
    #: Adjusts the bound request message before the call.
    prepare: Prepare | None = None
    #: Renders the reply instead of :func:`render`.
    finish: Finish | None = None
    #: Answers from what the gateway holds, after the request is bound (so bad input is
    #: still a 400); None makes the call.
    local: Local | None = None


#: A route with nothing special.
GENERIC = Special()

#: Success status of RPCs that store what they are given (CONTRACT.md §6: 202 once stored);
#: a servicer's ``x-http-code`` metadata still wins.
ACCEPTED = frozenset({"botmon.logs.v1.LogsService.WriteLogsHttp",
                      "botmon.logs.v1.LogsService.PushLoki",
                      "botmon.metrics.v1.MetricsService.RecordEventsHttp"})


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _ascii(value: str) -> str:
    # Percent-encoded unless plain; the service's interceptor decodes it.
    if value.isascii() and value.isprintable() and "%" not in value:
        return value
    return quote(value, safe="")


@lru_cache(maxsize=1024)
def caller_pairs(subject: str, role: str) -> tuple[tuple[str, str], ...]:
    """``x-botmon-subject`` / ``x-botmon-role``: gRPC metadata to backends, headers to clients."""
    # The same few callers make every request: escape and build their pairs once.
    return ((SUBJECT_HEADER, _ascii(subject)), (ROLE_HEADER, role))


def caller_metadata(request: Request) -> tuple[tuple[str, str], ...]:
    """Request id plus the authenticated caller, whom the backend believes only because the
    channel carries the internal credential."""
    principal = getattr(request.ctx, "principal", None)
    if principal is None:
        return call_metadata()
    return call_metadata() + caller_pairs(principal.subject, principal.role)


def _http_code(metadata, default: int) -> int:
    for key, value in metadata or ():
        if key == "x-http-code" and str(value).isdecimal() and 200 <= int(value) < 300:
            return int(value)
    return default


async def call(clients: Clients, route: Route, message: Message,
               request: Request) -> tuple[Message, int]:
    """Call the RPC behind ``route`` with the deadline; return the reply and HTTP status."""
    rpc = clients.callable(route)(message, timeout=clients.backends.deadline,
                                  metadata=caller_metadata(request))
    try:
        reply = await rpc
        initial = await rpc.initial_metadata()
        trailing = await rpc.trailing_metadata()
    except grpc.aio.AioRpcError as exc:
        raise from_rpc_error(exc, route.component) from None
    default = 202 if route.rpc in ACCEPTED else 200
    return reply, _http_code(trailing, _http_code(initial, default))


def rpc_handler(route: Route, special: Special = GENERIC
                ) -> Callable[..., Awaitable[HTTPResponse]]:
    """The handler of one transcoded route."""
    prepare, finish, local = special.prepare, special.finish, special.local

    async def handler(request: Request, **params: str) -> HTTPResponse:
        query = request.get_query_args(keep_blank_values=True) if request.query_string else ()
        message = route.bind(params, query, request.body if route.body else None,
                             request.headers.get("content-type", ""))
        if local and (response := local(request, route)) is not None:
            return response
        if prepare:
            prepare(request, message)
        reply, status = await call(request.app.ctx.clients, route, message, request)
        if finish:
            return finish(request, route, reply, status)
        return render(route, reply, status)

    handler.__name__ = f"rpc_{route.method.name}"
    return handler


# ---------------------------------------------------------------- special routes

def _health_body(view: HealthView) -> tuple[bytes, int]:
    if view.health is not None and view.health.HasField("timestamp") and not view.reason:
        stamp = view.health.timestamp.ToJsonString()
    else:
        stamp = _now()
    body = {"status": view.status, "timestamp": stamp, "version": __version__}
    if view.reason:
        body["reason"] = view.reason
    return orjson.dumps(body), 503 if view.status == "unhealthy" else 200


async def health(request: Request, **_: str) -> HTTPResponse:
    """``GET /health`` from the snapshot: no gRPC hop, never stale, never hanging; its
    body rendered once per update of the snapshot."""
    body, status = request.app.ctx.clients.snapshot.rendered(_health_body)
    return raw(body, status=status, content_type="application/json")


def _status(request: Request, route: Route) -> HTTPResponse | None:
    """``GET /status`` from the WatchStatus snapshot while it is fresh (else the call)."""
    body = request.app.ctx.clients.status.body(route)
    return None if body is None else raw(body, content_type="application/json")


def _detailed(request: Request, route: Route, reply: Message, status: int) -> HTTPResponse:
    limiter = request.app.ctx.clients.limiter
    if limiter.backend_down:
        reply.notes.append(
            "rate limiter: Redis is unreachable; limited requests are refused with 429 "
            "(fail-closed)" if limiter.fails_closed else
            "rate limiter: Redis is unreachable; requests are let through uncounted (fail-open)")
    if wants_health_json(request.headers.get("accept")):
        doc = health_json(reply)
        return json(doc, status=http_status(doc), content_type=CONTENT_TYPE)
    return render(route, reply, status)


def _prometheus_format(request: Request, message: Message) -> None:
    if not message.format:
        accept = (request.headers.get("accept") or "").lower()
        message.format = "openmetrics" if "application/openmetrics-text" in accept else "text"


def _prometheus(request: Request, route: Route, reply: Message, status: int) -> HTTPResponse:
    body = reply.body
    body.data = request.app.ctx.telemetry.append_to(
        body.data, request.app.ctx.clients.limiter,
        openmetrics="openmetrics" in body.content_type)
    return render(route, reply, status)


def _logs_page_format(request: Request, message: Message) -> None:
    if not message.page_format:
        message.page_format = logs_service_pb2.LOG_PAGE_FORMAT_JSON


def _logs_page(request: Request, route: Route, reply: Message, status: int) -> HTTPResponse:
    # The logs service rendered the page from its rows: pass it through. A service that
    # did not (one of an earlier version, during a rolling upgrade) sent messages.
    if reply.HasField("body"):
        return http_body(reply.body, status)
    return render(route, reply, status)


async def debug_info(request: Request, **_: str) -> HTTPResponse:
    """Every process's debug figures, summed in ``debug``; admin only (by its path)."""
    clients: Clients = request.app.ctx.clients
    principal = request.ctx.principal
    return json(await gather_debug_info(clients.backends, request.app.ctx.settings,
                                        caller_pairs(principal.subject, principal.role)))


async def live(request: Request) -> HTTPResponse:
    """The process answers; no dependency is consulted."""
    return json({"status": "live", "timestamp": _now(), "version": __version__,
                 "uptime_seconds": round(time.monotonic() - request.app.ctx.started, 3)})


async def ready(request: Request) -> HTTPResponse:
    """200 when every backend's grpc.health.v1 says SERVING, else 503 listing the others."""
    states = await request.app.ctx.clients.readiness.check()
    not_ready = sorted(name for name, state in states.items() if state != "SERVING")
    body = {"status": "not_ready" if not_ready else "ready", "timestamp": _now(),
            "services": states, "not_ready": not_ready}
    return json(body, status=503 if not_ready else 200)


#: RPC name -> how its route differs from the generic one.
SPECIAL: dict[str, Special] = {
    "botmon.health.v1.HealthService.GetHealth": Special(handler=health),
    "botmon.health.v1.HealthService.GetDetailedHealth": Special(finish=_detailed),
    "botmon.health.v1.HealthService.GetStatus": Special(local=_status),
    "botmon.metrics.v1.MetricsService.GetPrometheusMetrics": Special(
        prepare=_prometheus_format, finish=_prometheus),
    "botmon.debug.v1.DebugService.GetDebugInfo": Special(handler=debug_info),
    "botmon.logs.v1.LogsService.ListLogs": Special(prepare=_logs_page_format,
                                                   finish=_logs_page),
}
