"""The gateway's access log: one JSON line per request, cheap enough for ``info`` by default.

A line has the fields and order of :class:`botmon.runtime.logging.JsonFormatter`
(time, level, component, logger, message, request_id, then the request's
method, path, route, status and duration), but is built without a
``LogRecord``: the constant fields are rendered once, the timestamp's seconds
once per second, and the rest by orjson. Lines collect in a buffer written to
stderr by a worker thread every ``FLUSH_SECONDS`` (or at ``MAX_LINES``), so a
request never waits for a write, and a slow reader of stderr never stalls the
event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import orjson

__all__ = ["AccessLog", "RequestIds"]

FLUSH_SECONDS = 0.05
MAX_LINES = 1024


class RequestIds:
    """Request ids in the format of runtime's ``new_request_id`` (32 hex digits): a random
    prefix per process and a counter, instead of a system call for every request."""

    def __init__(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._next = int.from_bytes(os.urandom(4), "big")

    def new(self) -> str:
        self._next += 1
        return f"{self._prefix}{self._next & 0xFFFFFFFFFFFFFFFF:016x}"


class AccessLog:
    """Buffered access-log lines of logger ``name``, written when ``logger`` enables INFO."""

    def __init__(self, component: str, logger: logging.Logger, stream=None):
        self.logger = logger
        self._stream = stream
        self._head = orjson.dumps({"level": "info", "component": component,
                                   "logger": logger.name, "message": "request"})[1:-1]
        self._second = -1
        self._stamp = b""
        self._lines: list[bytes] = []
        self._flush: asyncio.TimerHandle | None = None
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="access-log")

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

    def _time(self) -> bytes:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = b'{"time":"' + time.strftime(
                "%Y-%m-%dT%H:%M:%S", time.gmtime(second)).encode()
        return self._stamp + b".%03dZ\"," % int((now - second) * 1000)

    def record(self, request_id: str, method: str, path: str, route: str, status: int,
               duration_ms: float) -> None:
        """Queue the line of one request."""
        self._lines.append(self._time() + self._head + orjson.dumps({
            "request_id": request_id, "method": method, "path": path, "route": route,
            "status": status, "duration_ms": duration_ms})[:-1].replace(b"{", b",", 1) + b"}\n")
        if len(self._lines) >= MAX_LINES:
            self.flush()
        elif self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        """Hand the buffered lines to the writer thread."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        if self._lines:
            lines, self._lines = self._lines, []
            self._writer.submit(self._write, lines)

    def _write(self, lines: list[bytes]) -> None:
        stream = self._stream or sys.stderr
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):  # not a file (a test's capture)
            stream.write(b"".join(lines).decode())
            return
        # Writes of at most PIPE_BUF bytes, ending at line ends: a pipe keeps each whole,
        # so lines of other writers to the same stderr never land inside one.
        chunk: list[bytes] = []
        size = 0
        for line in lines:
            if size + len(line) > select.PIPE_BUF and chunk:
                _write_all(fd, b"".join(chunk))
                chunk, size = [], 0
            chunk.append(line)
            size += len(line)
        _write_all(fd, b"".join(chunk))

    def close(self) -> None:
        """Write what is buffered and stop the writer."""
        self.flush()
        self._writer.shutdown(wait=True)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
