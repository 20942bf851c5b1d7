"""Building entries and calling the logs service in tests."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from botmon.logs.v1 import log_entry_pb2, logs_service_pb2_grpc
from botmon.logs.v1 import logs_service_pb2 as pb


def stamp(seconds: float) -> timestamp_pb2.Timestamp:
    """A Timestamp for Unix ``seconds``."""
    ns = round(seconds * 1e9)
    return timestamp_pb2.Timestamp(seconds=ns // 10**9, nanos=ns % 10**9)


def entry(level: str = "info", service: str = "api", message: str = "hello",
          ts: float | None = None, metadata: dict[str, Any] | None = None
          ) -> log_entry_pb2.LogEntry:
    """A LogEntry to write (``ts`` in Unix seconds; unset means "now" on receipt)."""
    result = log_entry_pb2.LogEntry(level=level, service=service, message=message)
    if ts is not None:
        result.timestamp.CopyFrom(stamp(ts))
    if metadata is not None:
        result.metadata.update(metadata)
    return result


@dataclass
class Logs:
    """A started logs service and a stub to call it."""

    server: Any
    channel: grpc.aio.Channel
    stub: logs_service_pb2_grpc.LogsServiceStub

    async def write(self, entries: Iterable[log_entry_pb2.LogEntry]) -> pb.WriteLogsResponse:
        return await self.stub.WriteLogs(pb.WriteLogsRequest(logs=list(entries)), timeout=30)

    async def list(self, **fields) -> pb.ListLogsResponse:
        for key in ("start_time", "end_time"):
            if isinstance(fields.get(key), int | float):
                fields[key] = stamp(fields[key])
        return await self.stub.ListLogs(pb.ListLogsRequest(**fields), timeout=30)

    async def all_pages(self, cursor: str = "", **fields
                        ) -> tuple[list[log_entry_pb2.LogEntry], list[int]]:
        """Every entry of a query, following cursors (from ``cursor``, the first page when
        empty); also each page's total."""
        entries, totals = [], []
        while True:
            page = await self.list(cursor=cursor, **fields)
            entries.extend(page.logs)
            totals.append(page.total)
            if not page.next_cursor:
                return entries, totals
            cursor = page.next_cursor




def now() -> float:
    return time.time()
