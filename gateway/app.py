"""The Sanic edge: ``create_app(settings)`` builds the REST + WebSocket gateway.

Routes come from the protos' ``google.api.http`` annotations (see
``transcoding``); what is gateway business — auth, rate limits, request ids,
health snapshot, WebSocket bridges, content negotiation — lives beside them.
Backend clients are opened per worker in ``before_server_start`` and closed in
``after_server_stop``; every exception is rendered by one handler.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time

from sanic import Request, Sanic
from sanic.response import HTTPResponse

from botmon.runtime.config import Settings
from botmon.runtime.context import request_id
from botmon.runtime.tls import CertificateFiles, reload_ssl_context, server_ssl_context
from gateway import handlers, openapi, shippers, ws
from gateway.access_log import AccessLog, RequestIds
from gateway.auth import PUBLIC_PATHS, Authenticator, bearer_token, required_role
from gateway.clients import Clients
from gateway.errors import GatewayError, render_exception
from gateway.limits import client_ip, rate_class, rate_key
from gateway.sockets import SocketCaps
from gateway.telemetry import Telemetry
from gateway.transcoding import load_routes
from gateway.ui import add_console_routes

__all__ = ["MAX_BODY_BYTES", "MAX_HEAD_BYTES", "create_app", "reload_certificates",
           "worker_app"]

log = logging.getLogger("botmon.gateway")

#: Request bodies above this size are refused with 413.
MAX_BODY_BYTES = 1024 * 1024
#: A request line plus headers above this size is refused with 431.
MAX_HEAD_BYTES = 16 * 1024
BASE = "/api/v1/monitoring"
_RID = re.compile(r"^[\w.:/+=@-]{1,128}$")
#: Seconds between looks at the TLS files for a rotated certificate.
CERT_POLL_SECONDS = 2.0
_names = itertools.count(1)


def _port(address: str) -> int:
    return int(address.rpartition(":")[2])


def create_app(settings: Settings, *, name: str | None = None) -> Sanic:
    """Build the gateway app (not started); several may live in one process."""
    app = Sanic(name or f"botmon_gateway_{next(_names)}", configure_logging=False)
    app.config.update({
        "REQUEST_MAX_SIZE": MAX_BODY_BYTES,
        # Sanic's ceiling (default 8 KiB): room for large JWTs from identity providers.
        "REQUEST_MAX_HEADER_SIZE": MAX_HEAD_BYTES,
        "WEBSOCKET_MAX_SIZE": MAX_BODY_BYTES,
        "MOTD": False,
        "ACCESS_LOG": False,
        "NOISY_EXCEPTIONS": False,
        "FALLBACK_ERROR_FORMAT": "json",
        "GRACEFUL_SHUTDOWN_TIMEOUT": 5.0,
    })
    app.ctx.settings = settings
    app.ctx.telemetry = Telemetry()
    app.ctx.sockets = SocketCaps(settings.ws_max_per_subject, settings.ws_max_per_ip)
    app.ctx.access_log = AccessLog("gateway", log)
    app.ctx.request_ids = RequestIds()
    app.ctx.authenticator = Authenticator(settings)
    app.ctx.started = time.monotonic()
    app.ctx.routes = load_routes()
    app.ctx.certificates = app.ctx.ssl = None
    if settings.tls_cert is not None and settings.tls_key is not None:
        app.ctx.certificates = CertificateFiles(settings.tls_cert, settings.tls_key)
        app.ctx.ssl = server_ssl_context(app.ctx.certificates)
    app.error_handler.add(Exception, render_exception)

    for index, route in enumerate(app.ctx.routes):
        special = handlers.SPECIAL.get(route.rpc, handlers.GENERIC)
        handler = special.handler or handlers.rpc_handler(route, special)
        if route.rpc in shippers.BY_CONTENT_TYPE:
            handler = shippers.BY_CONTENT_TYPE[route.rpc](handler)
        _add(app, handler, route.sanic_path, route.http_method, route.template,
             name=f"{route.method.name}_{index}", rpc_path=route.grpc_path)
    _add(app, shippers.otlp_logs, shippers.OTLP_LOGS_PATH, "POST", shippers.OTLP_LOGS_PATH,
         name="otlp_logs")
    _add(app, handlers.live, f"{BASE}/health/live", "GET", f"{BASE}/health/live", name="live")
    _add(app, handlers.ready, f"{BASE}/health/ready", "GET", f"{BASE}/health/ready",
         name="ready")
    for prefix in ("", BASE):
        # A browser opens the docs page by URL, so these two also take ?access_token=.
        _add(app, openapi.openapi_json, f"{prefix}/openapi.json", "GET", f"{prefix}/openapi.json",
             name=f"openapi{'_base' if prefix else ''}", query_token=True)
        _add(app, openapi.docs_page, f"{prefix}/docs", "GET", f"{prefix}/docs",
             name=f"docs{'_base' if prefix else ''}", query_token=True)
        for stream, bridge in (("metrics", ws.metrics_socket), ("logs", ws.logs_socket)):
            path = f"{prefix}/ws/{stream}"
            app.add_websocket_route(bridge, path, name=f"ws_{stream}{'_base' if prefix else ''}",
                                    ctx_template=path, ctx_role="viewer", ctx_public=False,
                                    ctx_rate_class=stream, ctx_query_token=True,
                                    ctx_websocket=True)

    add_console_routes(app)

    @app.before_server_start
    async def open_clients(app: Sanic) -> None:
        app.ctx.clients = Clients(settings, port=_port(settings.http_addr))
        app.ctx.clients.start()
        app.ctx.cert_watch = asyncio.create_task(_watch_certificates(app)) \
            if app.ctx.ssl is not None else None

    @app.after_server_stop
    async def close_clients(app: Sanic) -> None:
        if app.ctx.cert_watch is not None:
            app.ctx.cert_watch.cancel()
        await app.ctx.clients.close()
        app.ctx.access_log.close()

    app.on_request(_before, priority=100)
    app.on_response(_after, priority=100)
    return app


def worker_app(settings: Settings) -> Sanic:
    """The app of one of several gateway worker processes (Sanic builds it in each)."""
    from botmon.runtime.logging import configure_logging  # the worker's own handlers
    configure_logging("gateway", settings.log_level)
    return create_app(settings, name="botmon_gateway")


def reload_certificates(app: Sanic, force: bool = False) -> None:
    """Load rotated certificate files into the HTTPS context; open connections carry on."""
    if app.ctx.ssl is not None:
        reload_ssl_context(app.ctx.ssl, app.ctx.certificates, force)


async def _watch_certificates(app: Sanic) -> None:
    while True:
        await asyncio.sleep(CERT_POLL_SECONDS)
        reload_certificates(app)


def _add(app: Sanic, handler, path: str, method: str, template: str, *, name: str,
         query_token: bool = False, rpc_path: str | None = None) -> None:
    app.add_route(handler, path, methods=[method], name=name, ctx_template=template,
                  ctx_role=required_role(method, template, rpc_path),
                  ctx_public=template in PUBLIC_PATHS,
                  ctx_rate_class=rate_class(method, template), ctx_query_token=query_token)


async def _before(request: Request) -> None:
    """Request id, then authentication and role, then the rate limit — before any backend call."""
    given = request.headers.get("x-request-id")
    rid = given if given and _RID.match(given) else request.app.ctx.request_ids.new()
    request.ctx.request_id = rid
    request_id.set(rid)
    request.ctx.started = time.perf_counter()
    request.ctx.principal = None
    route = request.route
    if route is None or not hasattr(route.ctx, "template"):
        return
    ctx = route.ctx
    app = request.app
    if not ctx.public:
        token = bearer_token(request.headers.get("authorization"))
        if token is None and ctx.query_token:
            token = request.args.get("access_token")
        failed_logins = app.ctx.clients.failed_logins
        if failed_logins.blocked:
            failed_logins.check(client_ip(request, app.ctx.settings.trusted_proxies))
        try:
            principal = app.ctx.authenticator.authenticate(token)
        except GatewayError as exc:
            if token is None or not failed_logins.active:
                raise
            ip = client_ip(request, app.ctx.settings.trusted_proxies)
            raise await failed_logins.failed(ip, exc) from None
        request.ctx.principal = principal
        if not principal.allows(ctx.role):
            raise GatewayError(403, f"role {principal.role!r} may not {request.method} "
                                    f"{ctx.template}; it needs {ctx.role!r} or higher")
        if getattr(ctx, "websocket", False):
            refusal = app.ctx.sockets.refusal(
                principal.subject, client_ip(request, app.ctx.settings.trusted_proxies))
            if refusal:
                raise GatewayError(429, refusal, headers={"Retry-After": "5"})
    if ctx.rate_class == "health":
        return
    limiter = app.ctx.clients.limiter
    # An unlimited class is never counted and sends no headers: skip the key and the await.
    if limiter.rate(ctx.rate_class).limit == 0:
        return
    settings = app.ctx.settings
    subject = request.ctx.principal.subject if request.ctx.principal else None
    key = rate_key(ctx.rate_class, client_ip(request, settings.trusted_proxies), subject)
    decision = await limiter.check(ctx.rate_class, key)
    request.ctx.rate_headers = decision.headers()
    if not decision.allowed:
        raise GatewayError(429, f"rate limit of the {ctx.rate_class!r} class exceeded "
                                f"({decision.limit} requests per window); retry in "
                                f"{decision.retry_after}s", headers=decision.headers())


async def _after(request: Request, response: HTTPResponse) -> None:
    rid = getattr(request.ctx, "request_id", None)
    if rid:
        response.headers["X-Request-ID"] = rid
    for key, value in (getattr(request.ctx, "rate_headers", None) or {}).items():
        response.headers.setdefault(key, value)
    principal = getattr(request.ctx, "principal", None)
    if principal is not None:
        # Who the token belongs to, so a client (the console) offers only what its role may do.
        for key, value in handlers.caller_pairs(principal.subject, principal.role):
            response.headers[key] = value
    route = request.route
    template = getattr(route.ctx, "template", "unmatched") if route else "unmatched"
    started = getattr(request.ctx, "started", None)
    elapsed = time.perf_counter() - started if started else 0.0
    ctx = request.app.ctx
    ctx.telemetry.observe(template, request.method, response.status, elapsed)
    if ctx.access_log.enabled:
        ctx.access_log.record(rid or "", request.method, request.path, template, response.status,
                              round(elapsed * 1000, 3))
