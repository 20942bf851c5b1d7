"""``BotmonLogHandler``: a ``logging.Handler`` that ships records to the logs service.

    handler = BotmonLogHandler("127.0.0.1:50054", service="checkout", token=OPERATOR_TOKEN)
    logging.getLogger().addHandler(handler)
    log.error("payment failed", extra={"order_id": 42}, exc_info=True)

Each record becomes one entry: its level (by number: ERROR and above → error,
WARNING → warn, INFO → info, below → debug), its formatted message, and
metadata with the logger, module, function, line, thread and process, every
``extra`` field, and for ``exc_info`` the exception's type, message and
traceback (its type also as ``error_type``, which the error summary groups by,
unless ``extra`` gives one).

``emit`` only appends to a bounded buffer under a lock, so the application is
never blocked and never sees an exception from it. A background thread sends
the buffer in batches (``WriteLogs``, each call with a deadline) every
``flush_interval`` seconds or as soon as ``batch_size`` records wait. Records
are counted, never retried: ``sent``, ``rejected`` (refused by the service as
invalid), ``dropped`` (buffer full, or the service unreachable or failing).
``flush()`` and ``close()`` — which ``logging.shutdown()`` calls at exit —
send what is buffered within ``close_timeout`` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections import deque
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from botmon.client.connection import Connection
from botmon.logs.v1 import log_entry_pb2, logs_service_pb2, logs_service_pb2_grpc

__all__ = ["BotmonLogHandler"]

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def _level(levelno: int) -> str:
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warn"
    if levelno >= logging.INFO:
        return "info"
    return "debug"


def _jsonable(value: Any, depth: int = 0) -> Any:
    """``value`` as something a protobuf Struct holds; other objects become their str()."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if depth < 8 and isinstance(value, dict):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if depth < 8 and isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v, depth + 1) for v in value]
    return str(value)


class BotmonLogHandler(logging.Handler):
    """Sends log records to the botmon logs service in batches from a background thread."""

    def __init__(self, target: str, service: str, *, level: int = logging.NOTSET,
                 batch_size: int = 500, flush_interval: float = 1.0, buffer_size: int = 10_000,
                 timeout: float = 5.0, close_timeout: float = 5.0,
                 channel: grpc.Channel | None = None, token: str | None = None,
                 credentials: grpc.ChannelCredentials | None = None):
        super().__init__(level)
        if not service:
            raise ValueError("service is required: name the application the logs come from")
        self.target = target
        self.service = service
        self.batch_size = max(1, min(batch_size, 10_000))
        self.flush_interval = flush_interval
        self.buffer_size = buffer_size
        self.timeout = timeout
        self.close_timeout = close_timeout
        self.sent = 0
        self.rejected = 0
        self.dropped = 0
        self.failed_batches = 0
        self.last_error = ""
        self._connection = Connection.open(None if channel else target, channel, token,
                                           credentials)
        self._metadata = self._connection.metadata
        self._stub = logs_service_pb2_grpc.LogsServiceStub(self._connection.channel)
        self._buffer: deque[log_entry_pb2.LogEntry] = deque()
        self._state = threading.Condition()
        self._accepted = 0  # records ever buffered
        self._settled = 0   # of those, sent, rejected or dropped
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="botmon-log-handler", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if threading.get_ident() == self._thread.ident:
                return  # records of our own sending (e.g. gRPC's) would feed back forever
            item = self._entry(record)
            with self._state:
                if len(self._buffer) >= self.buffer_size:
                    self._buffer.popleft()
                    self.dropped += 1
                    self._settled += 1
                self._buffer.append(item)
                self._accepted += 1
                if len(self._buffer) >= self.batch_size:
                    self._wake.set()
        except Exception:
            self.dropped += 1

    def _entry(self, record: logging.LogRecord) -> log_entry_pb2.LogEntry:
        metadata: dict[str, Any] = {
            "logger": record.name, "module": record.module, "function": record.funcName,
            "line": record.lineno, "thread": record.threadName, "process": record.process,
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                metadata[key] = _jsonable(value)
        if record.exc_info and record.exc_info[0] is not None:
            kind, exc, tb = record.exc_info
            metadata["exception"] = {"type": kind.__name__, "message": str(exc),
                                     "traceback": "".join(traceback.format_exception(kind, exc,
                                                                                     tb))}
            metadata.setdefault("error_type", kind.__name__)
        if record.stack_info:
            metadata["stack"] = record.stack_info
        ns = int(record.created * 1e9)
        entry = log_entry_pb2.LogEntry(
            timestamp=timestamp_pb2.Timestamp(seconds=ns // 10**9, nanos=ns % 10**9),
            level=_level(record.levelno), service=self.service,
            message=record.getMessage() or "(empty message)")
        entry.metadata.update(metadata)
        return entry

    def _take(self) -> list[log_entry_pb2.LogEntry]:
        with self._state:
            count = min(self.batch_size, len(self._buffer))
            return [self._buffer.popleft() for _ in range(count)]

    def _send(self, batch: list[log_entry_pb2.LogEntry], timeout: float) -> None:
        accepted = rejected = 0
        try:
            reply = self._stub.WriteLogs(logs_service_pb2.WriteLogsRequest(logs=batch),
                                         timeout=timeout, metadata=self._metadata)
            accepted, rejected = reply.accepted, len(reply.errors)
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else None
            self.last_error = code.name if code else str(exc)
            if code == grpc.StatusCode.INVALID_ARGUMENT:
                rejected = len(batch)
            else:
                self.failed_batches += 1
        with self._state:
            self.sent += accepted
            self.rejected += rejected
            self.dropped += len(batch) - accepted - rejected
            self._settled += len(batch)
            self._state.notify_all()

    def _drain(self, deadline: float | None) -> None:
        while True:
            batch = self._take()
            if not batch:
                return
            timeout = self.timeout
            if deadline is not None:
                timeout = min(timeout, deadline - time.monotonic())
            if timeout <= 0:
                with self._state:
                    self.dropped += len(batch)
                    self._settled += len(batch)
                    self._state.notify_all()
                continue
            self._send(batch, timeout)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            self._drain(None)
        self._drain(time.monotonic() + self.close_timeout)

    def flush(self, timeout: float | None = None) -> bool:
        """Send what is buffered now; True if it was all settled within ``timeout``."""
        wait = self.close_timeout if timeout is None else timeout
        with self._state:
            target = self._accepted
            self._wake.set()
            return self._state.wait_for(lambda: self._settled >= target, wait)

    def close(self) -> None:
        """Send what is buffered (within ``close_timeout``), then stop the thread."""
        if not self._stopping.is_set():
            self._stopping.set()
            self._wake.set()
            self._thread.join(self.close_timeout + 1)
            with self._state:
                unsent = len(self._buffer)
                self._buffer.clear()
                self.dropped += unsent
                self._settled += unsent
            self._connection.close()
        super().close()

    def __repr__(self) -> str:
        return (f"<BotmonLogHandler {self.service} -> {self.target} sent={self.sent} "
                f"dropped={self.dropped}>")
