"""Report platform events to botmon's metrics service from application code.

    recorder = EventRecorder("metrics.internal:50052", service="web_server",
                             token=OPERATOR_TOKEN)  # TLS: credentials=ssl_channel_credentials(ca)
    recorder.record_request("GET", "/api/chat", 200, 42.5)
    recorder.session_started("sess-1")
    ...
    recorder.close()          # sends what is buffered, within a deadline

Every ``record_*`` call only appends to a bounded in-memory buffer: it never
blocks on the network and never raises. A background thread sends the buffer
in batches with ``RecordEvents`` (each call with a deadline). Events that
cannot be delivered — buffer full, service unreachable, or refused as invalid —
are dropped and counted in :attr:`EventRecorder.stats`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

import grpc

from botmon.client.connection import Connection
from botmon.metrics.v1 import metrics_pb2, metrics_service_pb2, metrics_service_pb2_grpc

__all__ = ["EventRecorder", "RecorderStats"]

log = logging.getLogger("botmon.client.events")


@dataclass(frozen=True)
class RecorderStats:
    """Event counts since the recorder was created."""

    #: Events the service stored.
    sent: int
    #: Events the service refused as invalid.
    rejected: int
    #: Events lost: buffer full, service unreachable or late, or left at close.
    dropped: int
    #: Events waiting to be sent.
    buffered: int


class EventRecorder:
    """A thread-safe, non-blocking event recorder with a batching sender thread."""

    def __init__(self, target: str | None = None, *, channel: grpc.Channel | None = None,
                 service: str = "", batch_size: int = 500, flush_interval: float = 1.0,
                 max_buffer: int = 100_000, timeout: float = 5.0, token: str | None = None,
                 credentials: grpc.ChannelCredentials | None = None):
        self._connection = Connection.open(target, channel, token, credentials)
        self._metadata = self._connection.metadata
        self._stub = metrics_service_pb2_grpc.MetricsServiceStub(self._connection.channel)
        self.service = service
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_buffer = max_buffer
        self.timeout = timeout
        self._buffer: deque[metrics_pb2.Event] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._flush_now = False
        self._in_flight = 0
        self._sent = self._rejected = self._dropped = 0
        self._thread = threading.Thread(target=self._run, name="botmon-event-recorder",
                                        daemon=True)
        self._thread.start()

    # Recording: cheap, never blocking on I/O, never raising.

    def record_request(self, method: str, route: str, status: int, duration_ms: float, *,
                       bytes: int = 0, session_id: str = "", conversation_id: str = "",
                       timestamp: float | None = None) -> None:
        """An HTTP request the application served."""
        self._add("request", timestamp, method=method, route=route, status=status,
                  duration_ms=duration_ms, bytes=bytes, session_id=session_id,
                  conversation_id=conversation_id)

    def session_started(self, session_id: str, *, timestamp: float | None = None) -> None:
        self._add("session_started", timestamp, session_id=session_id)

    def session_ended(self, session_id: str, *, timestamp: float | None = None) -> None:
        self._add("session_ended", timestamp, session_id=session_id)

    def conversation_started(self, conversation_id: str, *,
                             timestamp: float | None = None) -> None:
        self._add("conversation_started", timestamp, conversation_id=conversation_id)

    def conversation_completed(self, conversation_id: str, messages: int, *,
                               timestamp: float | None = None) -> None:
        self._add("conversation_completed", timestamp, conversation_id=conversation_id,
                  messages=messages)

    def _add(self, kind: str, timestamp: float | None, **fields) -> None:
        try:
            event = metrics_pb2.Event(type=kind, service=self.service, **fields)
            event.timestamp.FromNanoseconds(int((time.time() if timestamp is None
                                                 else timestamp) * 1e9))
        except (TypeError, ValueError, OverflowError):
            # A wrongly typed argument must not break the application: count it as lost.
            with self._cond:
                self._dropped += 1
            return
        with self._cond:
            if self._closing or len(self._buffer) >= self.max_buffer:
                self._dropped += 1
                return
            self._buffer.append(event)
            if len(self._buffer) >= self.batch_size:
                self._cond.notify()

    # Sending, on the background thread.

    def _run(self) -> None:
        while True:
            with self._cond:
                # Send a full batch at once, a partial one after flush_interval.
                deadline = time.monotonic() + self.flush_interval
                while not (self._closing or self._flush_now
                           or len(self._buffer) >= self.batch_size):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                if not self._buffer:
                    self._flush_now = False
                    if self._closing:
                        return
                    continue
                batch = [self._buffer.popleft()
                         for _ in range(min(self.batch_size, len(self._buffer)))]
                if not self._buffer:
                    self._flush_now = False
                self._in_flight = len(batch)
            self._send(batch)
            with self._cond:
                self._in_flight = 0
                self._cond.notify_all()

    def _send(self, batch: list[metrics_pb2.Event]) -> None:
        try:
            reply = self._stub.RecordEvents(
                metrics_service_pb2.RecordEventsRequest(events=batch), timeout=self.timeout,
                metadata=self._metadata)
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else None
            with self._cond:
                if code == grpc.StatusCode.INVALID_ARGUMENT:
                    self._rejected += len(batch)
                else:
                    self._dropped += len(batch)
            log.warning("botmon events not delivered", extra={
                "events": len(batch), "code": getattr(code, "name", str(code))})
            return
        with self._cond:
            self._sent += reply.accepted
            self._rejected += len(reply.errors)

    # Control.

    @property
    def stats(self) -> RecorderStats:
        with self._cond:
            return RecorderStats(self._sent, self._rejected, self._dropped,
                                 len(self._buffer) + self._in_flight)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything recorded so far was sent (or lost); False on timeout."""
        deadline = time.monotonic() + (self.timeout * 2 if timeout is None else timeout)
        with self._cond:
            self._flush_now = True
            self._cond.notify_all()
            while self._buffer or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Send what is buffered within ``timeout`` seconds, then stop; the rest is dropped."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        with self._cond:
            self._dropped += len(self._buffer)
            self._buffer.clear()
        self._connection.close()

    def __enter__(self) -> EventRecorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
