"""WebSocket bridges onto the server-streaming RPCs: ``/ws/metrics`` and ``/ws/logs``.

One gRPC stream per socket. A bounded per-socket queue sits between the stream
and the socket: when the client reads too slowly the oldest messages are
dropped and counted (``dropped`` in the next message), so a slow client never
delays the stream or other clients. Closing the socket cancels the stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections import deque
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.message import Message
from sanic import Request
from sanic.server.websockets.impl import WebsocketImplProtocol

from botmon.logs.v1 import logs_service_pb2
from botmon.metrics.v1 import metrics_service_pb2
from botmon.runtime.errors import InvalidArgument
from gateway.convert import message_to_json
from gateway.errors import HTTP_STATUS
from gateway.handlers import caller_metadata
from gateway.transcoding import bind_query

__all__ = ["QUEUE_SIZE", "logs_socket", "metrics_socket"]

log = logging.getLogger("botmon.gateway.ws")

#: Messages held per socket before the oldest are dropped.
QUEUE_SIZE = 256
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013


class _Outbox:
    """A bounded queue that drops its oldest entry instead of blocking the producer."""

    def __init__(self, size: int):
        self.items: deque[dict[str, Any]] = deque()
        self.size = size
        self.dropped = 0
        self.ready = asyncio.Event()

    def put(self, item: dict[str, Any]) -> None:
        if len(self.items) >= self.size:
            self.items.popleft()
            self.dropped += 1
        self.items.append(item)
        self.ready.set()

    async def get(self) -> dict[str, Any]:
        while not self.items:
            self.ready.clear()
            await self.ready.wait()
        return self.items.popleft()


async def _refuse(socket: WebsocketImplProtocol, message: str, code: int = POLICY_VIOLATION,
                  status: str = "INVALID_ARGUMENT", http: int = 400) -> None:
    await socket.send(json.dumps({"type": "error", "error": {
        "code": http, "status": status, "message": message, "details": []}}))
    await socket.close(code, message[:120])


def _query(request: Request) -> list[tuple[str, str]]:
    return [(k, v) for k, v in request.get_query_args(keep_blank_values=True)
            if k != "access_token"]


async def _bridge(request: Request, socket: WebsocketImplProtocol, stream: str,
                  open_call: Callable[[], grpc.aio.UnaryStreamCall],
                  frames: Callable[[Message], list[dict[str, Any]]], server_dropped) -> None:
    telemetry = request.app.ctx.telemetry
    outbox = _Outbox(QUEUE_SIZE)
    call = open_call()

    async def produce() -> None:
        async for reply in call:
            for frame in frames(reply):
                outbox.put(frame)

    async def deliver() -> None:
        while True:
            frame = await outbox.get()
            dropped = outbox.dropped + server_dropped()
            if dropped:
                frame["dropped"] = dropped
            await socket.send(json.dumps(frame))

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


async def metrics_socket(request: Request, socket: WebsocketImplProtocol) -> None:
    """``metric_update`` frames from one ``StreamMetrics`` call (``?metrics=``, ``?interval=``)."""
    try:
        message = _metrics_request(_query(request))
    except InvalidArgument as exc:
        await _refuse(socket, exc.message)
        return
    clients = request.app.ctx.clients

    server_dropped = [0]

    def frames(reply: metrics_service_pb2.StreamMetricsResponse) -> list[dict[str, Any]]:
        server_dropped[0] = max((u.dropped for u in reply.updates), default=0)
        return [{"type": "metric_update", "metric": u.metric, "value": u.value,
                 "timestamp": message_to_json(u.timestamp)} for u in reply.updates]

    await _bridge(request, socket, "metrics",
                  lambda: clients.backends.stub("metrics").StreamMetrics(
                      message, metadata=caller_metadata(request)),
                  frames, lambda: server_dropped[0])


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
    clients = request.app.ctx.clients
    server_dropped = [0]

    def frames(reply: logs_service_pb2.TailLogsResponse) -> list[dict[str, Any]]:
        server_dropped[0] = reply.dropped
        return [{"type": "log", "log": message_to_json(entry)} for entry in reply.logs]

    await _bridge(request, socket, "logs",
                  lambda: clients.backends.stub("logs").TailLogs(
                      message, metadata=caller_metadata(request)),
                  frames, lambda: server_dropped[0])
