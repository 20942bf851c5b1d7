"""What log shippers send over HTTP: OTLP/HTTP logs, and Loki's protobuf push.

- ``POST /v1/logs`` (OTLP/HTTP, as every OpenTelemetry SDK's HTTP exporter and
  the Collector send it): ``application/x-protobuf`` or ``application/json``
  bodies, optionally ``Content-Encoding: gzip``; answered 200 with an
  ``ExportLogsServiceResponse`` in the request's encoding (``partialSuccess``
  when records were rejected). Errors of a protobuf request are a protobuf
  ``google.rpc.Status``, as the OTLP spec asks (see ``gateway.errors``).
- ``POST /loki/api/v1/push`` with ``Content-Type: application/x-protobuf``: a
  snappy-compressed (block format) ``logproto.PushRequest``, as Promtail,
  Grafana Alloy and the Docker and Kubernetes drivers send it; JSON bodies go
  to the transcoded ``PushLoki`` as before.

Protobuf bodies are forwarded to the logs service as they are, decompressed but
not decoded: the service decodes them once and answers INVALID_ARGUMENT for bytes
that are not the message. Decompressed bodies are limited to
:data:`MAX_INFLATED_BYTES`.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import cramjam
import grpc
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as otlp_pb2
from sanic import Request
from sanic.response import HTTPResponse, json, raw

from botmon.loki.v1 import push_service_pb2
from botmon.runtime.errors import InvalidArgument
from botmon.runtime.jsonbody import decode_json
from gateway.convert import message_to_json
from gateway.errors import GatewayError, from_rpc_error
from gateway.handlers import caller_metadata

__all__ = ["BY_CONTENT_TYPE", "MAX_INFLATED_BYTES", "OTLP_LOGS_PATH", "PROTOBUF",
           "loki_push", "otlp_logs"]

#: Largest body accepted once decompressed (compressed bodies stay within 1 MiB).
MAX_INFLATED_BYTES = 16 * 1024 * 1024
OTLP_LOGS_PATH = "/v1/logs"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_OTLP_EXPORT = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
_LOKI_PUSH = "/botmon.loki.v1.PushService/Push"

Handler = Callable[..., Awaitable[HTTPResponse]]


def media_type(request: Request) -> str:
    """The request's Content-Type without parameters, lower-cased ('' when absent)."""
    return (request.headers.get("content-type") or "").partition(";")[0].strip().lower()


def _unsupported(given: str, accepted: str) -> GatewayError:
    return GatewayError(415, f"Content-Type {given or '(none)'!r} is not accepted here; "
                             f"send {accepted}")


def _too_large(what: str) -> GatewayError:
    return GatewayError(413, f"the {what} body is larger than {MAX_INFLATED_BYTES} bytes once "
                             "decompressed; send smaller batches")


def _gunzip(body: bytes) -> bytes:
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
    try:
        data = inflater.decompress(body, MAX_INFLATED_BYTES + 1)
    except zlib.error as exc:
        raise InvalidArgument(f"the body is not valid gzip ({exc}); send it as "
                              "Content-Encoding: gzip says, or without that header") from None
    if len(data) > MAX_INFLATED_BYTES:
        raise _too_large("gzip")
    if not inflater.eof:
        raise InvalidArgument("the gzip body is truncated")
    return data


def _unsnappy(body: bytes) -> bytes:
    # The block format starts with the decompressed length as a varint; the decoder
    # allocates that much up front, so it is checked before decoding.
    length = shift = 0
    for byte in body[:5]:
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    else:
        raise InvalidArgument("the body is not snappy-compressed protobuf: no length header")
    if length > MAX_INFLATED_BYTES:
        raise _too_large("snappy")
    try:
        return bytes(cramjam.snappy.decompress_raw(body))
    except cramjam.DecompressionError as exc:
        raise InvalidArgument(f"the body is not snappy-compressed protobuf (block format, as "
                              f"Promtail sends it): {exc}") from None


async def _forward(request: Request, path: str, body: bytes, response_class: Any) -> Any:
    """Send ``body`` (a serialised request) to the logs service's RPC at ``path``."""
    clients = request.app.ctx.clients
    call = clients.forwarder("logs", path, response_class.FromString)
    try:
        return await call(body, timeout=clients.backends.deadline,
                          metadata=caller_metadata(request))
    except grpc.aio.AioRpcError as exc:
        raise from_rpc_error(exc, "logs") from None


# ---------------------------------------------------------------- OTLP/HTTP

def _hex_to_base64(record: dict[str, Any], names: tuple[str, str], where: str) -> None:
    """OTLP/JSON writes trace and span ids as hex, where proto JSON reads base64."""
    for name in names:
        value = record.get(name)
        if isinstance(value, str) and value:
            try:
                record[name] = base64.b64encode(bytes.fromhex(value)).decode("ascii")
            except ValueError:
                raise InvalidArgument(f"{where}.{name}: {value[:40]!r} is not hex; OTLP/JSON "
                                      "writes ids as hex digits") from None


def _children(node: Any, *names: str) -> list[Any]:
    for name in names:
        value = node.get(name) if isinstance(node, dict) else None
        if isinstance(value, list):
            return value
    return []


def _otlp_from_json(body: bytes) -> otlp_pb2.ExportLogsServiceRequest:
    document = decode_json(body)
    for r, resource in enumerate(_children(document, "resourceLogs", "resource_logs")):
        for s, scope in enumerate(_children(resource, "scopeLogs", "scope_logs")):
            for n, record in enumerate(_children(scope, "logRecords", "log_records")):
                if isinstance(record, dict):
                    where = f"resourceLogs[{r}].scopeLogs[{s}].logRecords[{n}]"
                    _hex_to_base64(record, ("traceId", "trace_id"), where)
                    _hex_to_base64(record, ("spanId", "span_id"), where)
    message = otlp_pb2.ExportLogsServiceRequest()
    try:
        # OTLP receivers ignore fields they do not know (the spec requires it).
        json_format.ParseDict(document, message, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError) as exc:
        raise InvalidArgument(f"the body is not an OTLP/JSON ExportLogsServiceRequest: "
                              f"{exc}") from None
    return message


async def otlp_logs(request: Request) -> HTTPResponse:
    """``POST /v1/logs``: OTLP/HTTP logs in protobuf or JSON."""
    kind = media_type(request)
    if kind not in (PROTOBUF, JSON):
        raise _unsupported(kind, f"{PROTOBUF} or {JSON} (OTLP/HTTP)")
    encoding = (request.headers.get("content-encoding") or "identity").strip().lower()
    if encoding not in ("gzip", "identity"):
        raise GatewayError(415, f"Content-Encoding {encoding!r} is not accepted; send gzip or "
                                "no Content-Encoding")
    body = request.body or b""
    if encoding == "gzip":
        body = _gunzip(body)
    if kind == JSON:
        body = _otlp_from_json(body).SerializeToString()
    reply = await _forward(request, _OTLP_EXPORT, body, otlp_pb2.ExportLogsServiceResponse)
    if kind == PROTOBUF:
        return raw(reply.SerializeToString(), content_type=PROTOBUF)
    return json(json_format.MessageToDict(reply))


# ---------------------------------------------------------------- Loki

def loki_push(json_handler: Handler) -> Handler:
    """``POST /loki/api/v1/push``: snappy protobuf here, JSON (or no type) to ``json_handler``."""

    async def handler(request: Request, **params: str) -> HTTPResponse:
        kind = media_type(request)
        if kind in ("", JSON):
            return await json_handler(request, **params)
        if kind != PROTOBUF:
            raise _unsupported(kind, f"{JSON} or {PROTOBUF} (snappy-compressed, as Promtail "
                                     "sends it)")
        reply = await _forward(request, _LOKI_PUSH, _unsnappy(request.body or b""),
                               push_service_pb2.PushResponse)
        return json(message_to_json(reply), status=202)

    handler.__name__ = "loki_push"
    return handler


#: RPCs whose route also takes other content types: RPC name -> wrapper of its handler.
BY_CONTENT_TYPE: dict[str, Callable[[Handler], Handler]] = {
    "botmon.logs.v1.LogsService.PushLoki": loki_push,
}
