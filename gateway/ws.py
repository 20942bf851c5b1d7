"""WebSocket bridges onto the server-streaming RPCs: ``/ws/metrics`` and ``/ws/logs``.

One gRPC stream per socket. A bounded per-socket queue sits between the stream
and the socket: when the client reads too slowly the oldest messages are
dropped and counted (``dropped`` in the next message), so a slow client never
delays the stream or other clients. Closing the socket cancels the stream.

Fan-out is cheap because subscribers share their replies: every socket of one
selection receives the same reply bytes at each tick, so a reply is decoded,
rendered as JSON and framed as WebSocket text messages once (:class:`_SharedFrames`,
keyed by those bytes, within a memory budget), and a socket's pending messages go out
in one write.
Sanic negotiates no WebSocket extensions (no permessage-deflate), so a text
message's wire form is the same on every socket.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.message import Message
from sanic import Request
from sanic.server.websockets.impl import WebsocketImplProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from botmon.logs.v1 import logs_service_pb2
from botmon.metrics.v1 import metrics_service_pb2
from botmon.runtime.channels import SERVICES
from botmon.runtime.errors import InvalidArgument
from gateway.convert import message_to_json
from gateway.errors import HTTP_STATUS
from gateway.handlers import caller_metadata
from gateway.limits import client_ip
from gateway.transcoding import bind_query

__all__ = ["QUEUE_SIZE", "logs_socket", "metrics_socket"]

log = logging.getLogger("botmon.gateway.ws")

#: Messages held per socket before the oldest are dropped.
QUEUE_SIZE = 256
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013
#: Bytes of recent replies whose rendered frames are kept for the other sockets that
#: receive the same reply (the frames take about three times as much again).
SHARED_REPLY_BYTES = 8 * 1024 * 1024


def _frame(payload: bytes) -> bytes:
    """``payload`` as a server's (unmasked) WebSocket text frame."""
    return Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[])


class _Text:
    """One JSON text message: its payload and its wire form as a WebSocket frame."""

    __slots__ = ("payload", "wire")

    def __init__(self, document: dict[str, Any]):
        self.payload = json.dumps(document, separators=(",", ":")).encode()
        self.wire = _frame(self.payload)

    def with_dropped(self, dropped: int) -> bytes:
        """The wire form with ``"dropped": dropped`` added to the JSON object."""
        return _frame(self.payload[:-1] + b',"dropped":%d}' % dropped)


class _Rendered:
    """A reply's messages and the updates the service reports dropped before it."""

    __slots__ = ("dropped", "texts")

    def __init__(self, documents: list[dict[str, Any]], dropped: int):
        self.texts = [_Text(d) for d in documents]
        self.dropped = dropped


class _SharedFrames:
    """``render(reply bytes)``, remembered for the most recent replies up to a byte budget."""

    def __init__(self, render: Callable[[bytes], _Rendered], budget: int = SHARED_REPLY_BYTES):
        self.render = render
        self.budget = budget
        self.size = 0
        self.entries: OrderedDict[bytes, _Rendered] = OrderedDict()

    def __call__(self, raw: bytes) -> _Rendered:
        rendered = self.entries.get(raw)
        if rendered is not None:
            self.entries.move_to_end(raw)
            return rendered
        rendered = self.entries[raw] = self.render(raw)
        self.size += len(raw)
        while self.size > self.budget:
            oldest, _ = self.entries.popitem(last=False)
            self.size -= len(oldest)
        return rendered


class _Outbox:
    """A bounded queue that drops its oldest entry instead of blocking the producer."""

    def __init__(self, size: int):
        self.items: deque[_Text] = deque()
        self.size = size
        self.dropped = 0
        self.ready = asyncio.Event()

    def put(self, item: _Text) -> None:
        if len(self.items) >= self.size:
            self.items.popleft()
            self.dropped += 1
        self.items.append(item)
        self.ready.set()

    async def take(self) -> list[_Text]:
        """Every queued message, waiting for one when there are none."""
        while not self.items:
            self.ready.clear()
            await self.ready.wait()
        items = list(self.items)
        self.items.clear()
        return items


async def _write(socket: WebsocketImplProtocol, data: bytes) -> None:
    """Write already framed messages, as Sanic's ``send`` does for one."""
    async with socket.conn_mutex:
        if socket.ws_proto.state is not State.OPEN:
            raise ConnectionClosed(None, None)
        await socket.io_proto.send(data)


async def _refuse(socket: WebsocketImplProtocol, message: str, code: int = POLICY_VIOLATION,
                  status: str = "INVALID_ARGUMENT", http: int = 400) -> None:
    await socket.send(json.dumps({"type": "error", "error": {
        "code": http, "status": status, "message": message, "details": []}}))
    await socket.close(code, message[:120])


def _query(request: Request) -> list[tuple[str, str]]:
    return [(k, v) for k, v in request.get_query_args(keep_blank_values=True)
            if k != "access_token"]


def _open_stream(request: Request, service: str, method: str,
                 message: Message) -> grpc.aio.UnaryStreamCall:
    """A server-streaming call whose replies arrive as bytes, undecoded."""
    channel = request.app.ctx.clients.backends.channel(service)
    call = channel.unary_stream(f"/{SERVICES[service][0]}/{method}",
                                request_serializer=type(message).SerializeToString)
    return call(message, metadata=caller_metadata(request))


async def _bridge(request: Request, socket: WebsocketImplProtocol, stream: str,
                  call: grpc.aio.UnaryStreamCall, frames: Callable[[bytes], _Rendered]) -> None:
    caps = request.app.ctx.sockets
    subject = request.ctx.principal.subject
    ip = client_ip(request, request.app.ctx.settings.trusted_proxies)
    # Checked at the handshake too (429); again here, where no other handshake interleaves.
    refusal = caps.refusal(subject, ip)
    if refusal:
        call.cancel()
        await _refuse(socket, refusal, TRY_AGAIN_LATER, "RESOURCE_EXHAUSTED", 429)
        return
    with caps.hold(subject, ip):
        await _stream(request, socket, stream, call, frames)


async def _stream(request: Request, socket: WebsocketImplProtocol, stream: str,
                  call: grpc.aio.UnaryStreamCall, frames: Callable[[bytes], _Rendered]) -> None:
    telemetry = request.app.ctx.telemetry
    outbox = _Outbox(QUEUE_SIZE)
    server_dropped = 0

    async def produce() -> None:
        nonlocal server_dropped
        async for reply in call:
            rendered = frames(reply)
            server_dropped = rendered.dropped
            for text in rendered.texts:
                outbox.put(text)

    async def deliver() -> None:
        while True:
            texts = await outbox.take()
            dropped = outbox.dropped + server_dropped
            await _write(socket, b"".join(t.with_dropped(dropped) if dropped else t.wire
                                          for t in texts))

    async def drain_client() -> None:
        # Incoming frames are ignored; recv() returning None means the client went away.
        while await socket.recv() is not None:
            pass

    telemetry.sockets[stream] += 1
    tasks = [asyncio.create_task(c) for c in (produce(), deliver(), drain_client())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            exc = task.exception()
            if isinstance(exc, grpc.aio.AioRpcError):
                code = exc.code()
                await _refuse(socket, f"the {stream} stream failed: {exc.details()}",
                              TRY_AGAIN_LATER if code == grpc.StatusCode.UNAVAILABLE
                              else POLICY_VIOLATION, code.name, HTTP_STATUS.get(code, 500))
            elif exc is not None and not isinstance(exc, asyncio.CancelledError):
                log.debug("websocket %s ended: %r", stream, exc)
    finally:
        call.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        telemetry.sockets[stream] -= 1
        telemetry.dropped[stream] += outbox.dropped


def _render_metrics(raw: bytes) -> _Rendered:
    reply = metrics_service_pb2.StreamMetricsResponse.FromString(raw)
    return _Rendered([{"type": "metric_update", "metric": u.metric, "value": u.value,
                       "timestamp": message_to_json(u.timestamp)} for u in reply.updates],
                     max((u.dropped for u in reply.updates), default=0))


def _render_logs(raw: bytes) -> _Rendered:
    reply = logs_service_pb2.TailLogsResponse.FromString(raw)
    return _Rendered([{"type": "log", "log": message_to_json(entry)} for entry in reply.logs],
                     reply.dropped)


_metric_frames = _SharedFrames(_render_metrics)
_log_frames = _SharedFrames(_render_logs)


async def metrics_socket(request: Request, socket: WebsocketImplProtocol) -> None:
    """``metric_update`` frames from one ``StreamMetrics`` call (``?metrics=``, ``?interval=``)."""
    try:
        message = _metrics_request(_query(request))
    except InvalidArgument as exc:
        await _refuse(socket, exc.message)
        return
    await _bridge(request, socket, "metrics",
                  _open_stream(request, "metrics", "StreamMetrics", message), _metric_frames)


def _metrics_request(query: list[tuple[str, str]]) -> metrics_service_pb2.StreamMetricsRequest:
    message = metrics_service_pb2.StreamMetricsRequest(interval_seconds=1.0)
    for key, value in query:
        if key == "metrics":
            names = [n.strip() for n in value.split(",") if n.strip()]
            message.metrics.extend(names)
        elif key == "interval":
            try:
                interval = float(value)
            except ValueError:
                raise InvalidArgument(f"interval must be a number of seconds, got {value!r}") \
                    from None
            if not math.isfinite(interval) or interval < 1:
                raise InvalidArgument(f"interval must be at least 1 second, got {value!r}")
            message.interval_seconds = interval
        else:
            raise InvalidArgument(f"unknown query parameter {key!r}; allowed: metrics, "
                                  "interval, access_token")
    return message


async def logs_socket(request: Request, socket: WebsocketImplProtocol) -> None:
    """``log`` frames from one ``TailLogs`` call, with the filters of ``GET /logs``."""
    message = logs_service_pb2.TailLogsRequest()
    try:
        bind_query(message, _query(request), set())
    except InvalidArgument as exc:
        await _refuse(socket, exc.message)
        return
    await _bridge(request, socket, "logs", _open_stream(request, "logs", "TailLogs", message),
                  _log_frames)
