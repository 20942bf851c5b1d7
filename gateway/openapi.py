"""OpenAPI 3 description generated from the route table and the proto descriptors.

``GET /openapi.json`` serves it; ``GET /docs`` serves a self-contained page
(no CDN) that lists the routes and tries them with ``fetch``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from sanic import Request
from sanic.response import HTTPResponse, html, json

from botmon import __version__
from botmon.debug.v1 import debug_service_pb2
from botmon.health.v1 import health_service_pb2
from botmon.logs.v1 import logs_service_pb2
from botmon.metrics.v1 import metrics_service_pb2
from gateway.auth import PUBLIC_PATHS, required_role
from gateway.convert import json_fields
from gateway.docs import DOCS_HTML
from gateway.handlers import ACCEPTED
from gateway.limits import rate_class
from gateway.transcoding import Route, load_routes

__all__ = ["build_openapi", "docs_page", "openapi_json"]

BASE = "/api/v1/monitoring"
_T = FieldDescriptor
_SCALARS = {
    _T.TYPE_DOUBLE: {"type": "number", "format": "double"},
    _T.TYPE_FLOAT: {"type": "number", "format": "float"},
    _T.TYPE_INT64: {"type": "integer", "format": "int64"},
    _T.TYPE_UINT64: {"type": "integer", "format": "int64", "minimum": 0},
    _T.TYPE_INT32: {"type": "integer", "format": "int32"},
    _T.TYPE_FIXED64: {"type": "integer", "format": "int64", "minimum": 0},
    _T.TYPE_FIXED32: {"type": "integer", "format": "int32", "minimum": 0},
    _T.TYPE_BOOL: {"type": "boolean"},
    _T.TYPE_STRING: {"type": "string"},
    _T.TYPE_BYTES: {"type": "string", "format": "byte"},
    _T.TYPE_UINT32: {"type": "integer", "format": "int32", "minimum": 0},
    _T.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    _T.TYPE_SFIXED64: {"type": "integer", "format": "int64"},
    _T.TYPE_SINT32: {"type": "integer", "format": "int32"},
    _T.TYPE_SINT64: {"type": "integer", "format": "int64"},
}
_WELL_KNOWN = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time",
                                  "description": "RFC 3339 UTC, e.g. 2024-01-15T10:00:00Z; "
                                                 "requests also accept Unix seconds"},
    "google.protobuf.Duration": {"type": "string", "example": "1.5s"},
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {"description": "any JSON value"},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Empty": {"type": "object"},
}
_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["code", "status", "message", "details"],
        "properties": {
            "code": {"type": "integer", "description": "HTTP status"},
            "status": {"type": "string", "description": "gRPC code name, e.g. INVALID_ARGUMENT"},
            "message": {"type": "string", "description": "what went wrong and what to fix"},
            "details": {"type": "array", "items": {}},
        },
    }},
}
_ERRORS = {"400": "Bad input; the message names the field and what to fix",
           "401": "Missing or bad credentials (WWW-Authenticate: Bearer)",
           "403": "The caller's role is too low",
           "404": "Not found",
           "409": "Already exists (ALREADY_EXISTS or ABORTED)",
           "412": "A precondition does not hold, e.g. the resource is not configured",
           "413": "Request body over 1 MiB",
           "431": "Request line and headers over 16 KiB together",
           "429": "Rate limit exceeded (Retry-After)",
           "501": "Not implemented yet by its service",
           "503": "A backend service is unavailable (the message names it)",
           "504": "A backend service did not answer in time"}


def _extended(schemas: _Schemas, message: Descriptor, extra: dict[str, Any]) -> dict[str, Any]:
    """``message``'s schema with the fields a special handler adds."""
    schemas.message(message)
    own = schemas.components[message.full_name]
    return {**own, "properties": {**own["properties"], **extra}}


def _health_body(schemas: _Schemas) -> dict[str, Any]:
    return _extended(schemas, health_service_pb2.GetHealthResponse.DESCRIPTOR, {
        "reason": {"type": "string", "description": "why the status is unhealthy, when it is"}})


def _debug_body(schemas: _Schemas) -> dict[str, Any]:
    """What ``gateway.debuginfo`` gathers: the sum over processes, and each process."""
    debug = _extended(schemas, debug_service_pb2.DebugInfo.DESCRIPTOR, {
        "processes": {"type": "integer", "description": "processes that answered"}})
    error = _ERROR["properties"]["error"]
    unreachable = {"type": "object", "required": ["error"], "additionalProperties": False,
                   "properties": {"error": {**error, "required": ["code", "status", "message"]}}}
    process = schemas.message(debug_service_pb2.GetDebugInfoResponse.DESCRIPTOR)
    return {"type": "object", "required": ["debug", "services"], "additionalProperties": False,
            "properties": {
                "debug": debug,
                "services": {"type": "object", "description": "by component: its figures, or "
                                                              "why it did not answer",
                             "additionalProperties": {"oneOf": [process, unreachable]}}}}


#: A valid request body per write route: the docs page shows it, fuzzers start from it.
_REQUEST_EXAMPLES: dict[str, Any] = {
    "botmon.logs.v1.LogsService.WriteLogsHttp": {"logs": [{
        "timestamp": "2024-01-15T10:00:00Z", "level": "info", "service": "web_server",
        "message": "Request processed successfully",
        "metadata": {"request_id": "req_123", "user_id": "user_456", "duration_ms": 150}}]},
    "botmon.logs.v1.LogsService.PushLoki": {"streams": [{
        "stream": {"job": "web_server", "env": "prod"},
        "values": [["1705312800000000000", "Request processed successfully"]]}]},
    "botmon.metrics.v1.MetricsService.RecordEventsHttp": {"events": [
        {"type": "request", "method": "POST", "route": "/api/chat", "status": 200,
         "duration_ms": 150.5, "bytes": 2048},
        {"type": "session_started", "session_id": "sess_1"},
        {"type": "conversation_completed", "conversation_id": "conv_1", "messages": 12}]},
    "botmon.alerts.v1.AlertsService.ConfigureAlertRule": {
        "name": "high_memory_usage", "type": "threshold", "metric": "memory.usage_percent",
        "condition": "greater_than", "threshold": 90, "duration_seconds": 300,
        "severity": "warning", "notify": {"webhook": "https://hooks.example.com/botmon"}},
    "botmon.alerts.v1.AlertsService.AcknowledgeAlert": {
        "acknowledged_by": "admin", "notes": "Investigating the issue"},
    "botmon.alerts.v1.AlertsService.CreateSilence": {
        "matchers": [{"name": "alertname", "value": "high_memory_usage"}],
        "ends_at": "2030-01-01T00:00:00Z", "comment": "maintenance window"},
}

#: What the JSON passed through as a ``google.api.HttpBody`` holds, per RPC (the service
#: parses it as this message's JSON form).
_HTTP_BODIES = {
    "botmon.logs.v1.LogsService.WriteLogsHttp": logs_service_pb2.WriteLogsRequest.DESCRIPTOR,
    "botmon.metrics.v1.MetricsService.RecordEventsHttp":
        metrics_service_pb2.RecordEventsRequest.DESCRIPTOR,
}

#: Responses that a special handler (``gateway.handlers.SPECIAL``) shapes itself.
_SPECIAL_BODIES = {"botmon.health.v1.HealthService.GetHealth": _health_body,
                   "botmon.debug.v1.DebugService.GetDebugInfo": _debug_body}
#: Other representations a special handler serves, by the Accept header.
_EXTRA_CONTENT = {"botmon.health.v1.HealthService.GetDetailedHealth": {
    "application/health+json": {"schema": {
        "type": "object", "required": ["status"],
        "description": "IETF health-check response format (Accept: application/health+json)",
        "properties": {"status": {"type": "string", "enum": ["pass", "warn", "fail"]}}}}}}
_ACCESS_TOKEN = {"name": "access_token", "in": "query", "schema": {"type": "string"},
                 "description": "the bearer token, for clients that cannot set the "
                                "Authorization header (browsers, WebSocket clients)"}


class _Schemas:
    """Collects component schemas of the messages reachable from the routes."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {"Error": _ERROR}

    def field(self, fd: FieldDescriptor) -> dict[str, Any]:
        if fd.type == _T.TYPE_MESSAGE and fd.message_type.GetOptions().map_entry:
            return {"type": "object",
                    "additionalProperties": self.single(fd.message_type.fields_by_name["value"])}
        item = self.single(fd)
        if fd.is_repeated:
            return {"type": "array", "items": item}
        if fd.has_presence:
            return {**item, "nullable": True} if "$ref" not in item \
                else {"allOf": [item], "nullable": True}
        return item

    def single(self, fd: FieldDescriptor) -> dict[str, Any]:
        if fd.type == _T.TYPE_MESSAGE:
            return self.message(fd.message_type)
        if fd.type == _T.TYPE_ENUM:
            return {"type": "string", "enum": [v.name for v in fd.enum_type.values]}
        return dict(_SCALARS[fd.type])

    def message(self, descriptor: Descriptor) -> dict[str, Any]:
        name = descriptor.full_name
        if name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[name])
        if name not in self.components:
            self.components[name] = {}  # placeholder first: messages may be recursive
            # Closed: the gateway refuses unknown request fields and renders only proto fields.
            self.components[name] = {
                "type": "object",
                "properties": {fd.name: self.field(fd) for fd in json_fields(descriptor)},
                "additionalProperties": False,
            }
        return {"$ref": f"#/components/schemas/{name}"}


def _query_parameters(descriptor: Descriptor, bound: set[str], prefix: str = "",
                      depth: int = 0) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    for fd in descriptor.fields:
        if not prefix and fd.name in bound:
            continue
        name = prefix + fd.name
        if fd.type == _T.TYPE_MESSAGE:
            full = fd.message_type.full_name
            if fd.message_type.GetOptions().map_entry:
                params.append({"name": name, "in": "query", "style": "deepObject",
                               "explode": True, "schema": {"type": "object",
                                                           "additionalProperties": {
                                                               "type": "string"}},
                               "description": f"map entries as {name}.<key>=<value> or "
                                              f"{name}[<key>]=<value>"})
            elif full == "google.protobuf.Timestamp":
                params.append({"name": name, "in": "query",
                               "schema": {"type": "string"},
                               "description": "RFC 3339 time or Unix seconds"})
            elif not fd.is_repeated and depth < 3 and full not in _WELL_KNOWN:
                params.extend(_query_parameters(fd.message_type, set(), name + ".", depth + 1))
            continue
        schema = _Schemas().single(fd)
        if fd.is_repeated:
            params.append({"name": name, "in": "query", "style": "form", "explode": True,
                           "schema": {"type": "array", "items": schema},
                           "description": "repeat the parameter or give a comma list"})
        else:
            params.append({"name": name, "in": "query", "schema": schema})
    return params


def _operation(route: Route, schemas: _Schemas) -> dict[str, Any]:
    request_type, response_type = route.method.input_type, route.method.output_type
    params = [{"name": f, "in": "path", "required": True, "schema": {"type": "string"}}
              for _, f in route.path_fields]
    bound = {f.split(".")[0] for _, f in route.path_fields}
    role = required_role(route.http_method, route.template, route.grpc_path)
    op: dict[str, Any] = {
        "operationId": route.method.name,
        "tags": [route.component],
        "summary": f"{route.service.name}.{route.method.name}",
        "description": f"gRPC `{route.rpc}`. Role: {role}; "
                       f"rate-limit class: {rate_class(route.http_method, route.template)}.",
    }
    if route.body == "*":
        bound.update(fd.name for fd in request_type.fields)
        body_schema = schemas.message(request_type)
    elif route.passes_body:
        bound.add(route.body)
        body_schema = schemas.message(_HTTP_BODIES[route.rpc]) if route.rpc in _HTTP_BODIES \
            else {"type": "string", "format": "binary"}
    elif route.body:
        bound.add(route.body)
        fd = request_type.fields_by_name[route.body]
        # A message body *is* that message (never null); anything else keeps its field shape.
        plain = fd.type == _T.TYPE_MESSAGE and not fd.is_repeated \
            and not fd.message_type.GetOptions().map_entry
        body_schema = schemas.single(fd) if plain else schemas.field(fd)
    if route.body:
        media: dict[str, Any] = {"schema": body_schema}
        if route.rpc in _REQUEST_EXAMPLES:
            media["example"] = _REQUEST_EXAMPLES[route.rpc]
        op["requestBody"] = {"required": True, "content": {"application/json": media}}
        if route.rpc in _PROTOBUF_TOO:
            op["requestBody"]["content"]["application/x-protobuf"] = {
                "schema": {"type": "string", "format": "binary",
                           "description": _PROTOBUF_TOO[route.rpc]}}
    params.extend(_query_parameters(request_type, bound))
    if params:
        op["parameters"] = params
    success = "202" if route.rpc in ACCEPTED else "200"
    if route.response_body:
        fd = response_type.fields_by_name[route.response_body]
        if fd.type == _T.TYPE_MESSAGE and fd.message_type.full_name == "google.api.HttpBody":
            content = {"text/plain": {"schema": {"type": "string"}},
                       "application/openmetrics-text": {"schema": {"type": "string"}}}
        else:
            content = {"application/json": {"schema": schemas.field(fd)}}
    else:
        content = {"application/json": {"schema": schemas.message(response_type)}}
    content.update(_EXTRA_CONTENT.get(route.rpc, {}))
    special = _SPECIAL_BODIES.get(route.rpc)
    if special:
        content["application/json"]["schema"] = special(schemas)
    responses: dict[str, Any] = {success: {"description": "OK", "content": content}}
    if route.rpc == "botmon.alerts.v1.AlertsService.ConfigureAlertRule":
        responses["201"] = {"description": "Created", "content": content}
    for code in _ERRORS:
        responses[code] = {"$ref": f"#/components/responses/E{code}"}
    if route.rpc in _PROTOBUF_TOO:
        responses["415"] = {"description": "Content-Type not accepted", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    op["responses"] = responses
    if route.template in PUBLIC_PATHS:
        op["security"] = []
    return op


#: Routes that also take a protobuf body (gateway.shippers), and what it is.
_PROTOBUF_TOO = {"botmon.logs.v1.LogsService.PushLoki":
                 "Loki's logproto.PushRequest (botmon.loki.v1.PushRequest), snappy-compressed "
                 "in the block format, as Promtail sends it"}


def _otlp_logs() -> dict[str, Any]:
    """``POST /v1/logs``: OTLP/HTTP, whose bodies are OTLP's own messages, not botmon's."""
    either = {"application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
              "application/json": {"schema": {"type": "object"}}}
    errors = {code: {"description": _ERRORS.get(code, "Content-Type or Content-Encoding "
                                                      "not accepted"),
                     "content": {"application/x-protobuf": {"schema": {
                                     "type": "string", "format": "binary",
                                     "description": "google.rpc.Status"}},
                                 "application/json": {"schema": {
                                     "$ref": "#/components/schemas/Error"}}}}
              for code in ("400", "401", "403", "413", "415", "429", "431", "503", "504")}
    return {
        "operationId": "ExportLogs", "tags": ["logs"],
        "summary": "OTLP/HTTP logs (opentelemetry.proto.collector.logs.v1.LogsService.Export)",
        "description": "An ExportLogsServiceRequest as protobuf or OTLP/JSON, optionally "
                       "gzip-compressed (Content-Encoding: gzip). Answers an "
                       "ExportLogsServiceResponse in the request's encoding; errors of a "
                       "protobuf request are a protobuf google.rpc.Status. Role: operator; "
                       "rate-limit class: ingest.",
        "requestBody": {"required": True, "content": either},
        "responses": {"200": {"description": "Stored (partialSuccess lists rejected records)",
                              "content": either}, **errors},
    }


def _gateway_paths() -> dict[str, Any]:
    error = {"$ref": "#/components/responses/E503"}
    probe = {"type": "object", "additionalProperties": True}
    denied = {code: {"$ref": f"#/components/responses/E{code}"} for code in ("401", "403", "429")}
    paths: dict[str, Any] = {
        f"{BASE}/health/live": {"get": {
            "operationId": "Live", "tags": ["gateway"], "security": [],
            "summary": "Liveness: the gateway process answers (no dependency checks)",
            "responses": {"200": {"description": "alive", "content": {
                "application/json": {"schema": probe}}}}}},
        f"{BASE}/health/ready": {"get": {
            "operationId": "Ready", "tags": ["gateway"], "security": [],
            "summary": "Readiness: every backend's grpc.health.v1 Check says SERVING",
            "responses": {"200": {"description": "ready", "content": {
                "application/json": {"schema": probe}}}, "503": error}}},
        "/openapi.json": {"get": {
            "operationId": "OpenApi", "tags": ["gateway"],
            "summary": "This document (also under the base path); role viewer",
            "parameters": [_ACCESS_TOKEN],
            "responses": {"200": {"description": "OpenAPI 3", "content": {
                "application/json": {"schema": {"type": "object"}}}}, **denied}}},
        "/docs": {"get": {
            "operationId": "Docs", "tags": ["gateway"],
            "summary": "A page to read and try the API (also under the base path); role viewer",
            "description": "Open it as /docs?access_token=<token>: the page loads this document "
                           "with that token and lets you paste one for trying routes.",
            "parameters": [_ACCESS_TOKEN],
            "responses": {"200": {"description": "HTML", "content": {
                "text/html": {"schema": {"type": "string"}}}}, **denied}}},
    }
    paths["/v1/logs"] = {"post": _otlp_logs()}
    streams = {
        "metrics": ("StreamMetrics", "Query: `metrics=cpu_usage,memory_usage` (all when "
                    "absent), `interval` seconds >= 1 (default 1). Frames: `{\"type\": "
                    "\"metric_update\", \"metric\", \"value\", \"timestamp\"}` plus `dropped` "
                    "when messages were dropped for a slow reader."),
        "logs": ("TailLogs", "Query: the filters of GET /logs (`level`, `service`, `q`, "
                 "`metadata.<key>`). Frames: `{\"type\": \"log\", \"log\": {...entry...}}` plus "
                 "`dropped`."),
    }
    for stream, (rpc, text) in streams.items():
        for path in (f"/ws/{stream}", f"{BASE}/ws/{stream}"):
            paths[path] = {"get": {
                "operationId": f"WebSocket{stream.title()}{'Base' if path.startswith(BASE) else ''}",
                "tags": ["websocket"],
                "summary": f"WebSocket bridge onto {rpc} (role viewer; rate class {stream})",
                "description": text + " Authenticate with the Authorization header or the "
                               "`access_token` query parameter. Bad parameters close the "
                               "socket with 1008 after a JSON error frame.",
                "parameters": [_ACCESS_TOKEN],
                "responses": {"101": {"description": "Switching Protocols"}, **denied},
            }}
    return paths


@cache
def build_openapi() -> dict[str, Any]:
    """The whole OpenAPI 3.0 document."""
    schemas = _Schemas()
    paths: dict[str, Any] = {}
    for route in load_routes():
        template = route.template
        paths.setdefault(template, {})[route.http_method.lower()] = _operation(route, schemas)
    paths.update(_gateway_paths())
    return {
        "openapi": "3.0.3",
        "info": {"title": "botmon Monitoring API", "version": __version__,
                 "description": "REST + WebSocket surface of botmon, transcoded from its gRPC "
                                "services. Errors use Google's REST error body."},
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                               "description": "static token or JWT "
                                                              "(HS256/RS256)"}},
            "schemas": schemas.components,
            "responses": {f"E{code}": {"description": text, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Error"}}}}
                for code, text in _ERRORS.items()},
        },
    }


async def openapi_json(request: Request) -> HTTPResponse:
    return json(build_openapi())


async def docs_page(request: Request) -> HTTPResponse:
    # The page may be opened with ?access_token=: keep that URL out of caches and Referers.
    return html(DOCS_HTML, headers={"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"})
