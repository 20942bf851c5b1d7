"""What the export loop ships, read from the logs and metrics services over gRPC only."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from functools import partial
from typing import Any

import orjson

from botmon.logs.v1 import logs_service_pb2
from botmon.metrics.v1 import metrics_service_pb2
from botmon.runtime.channels import Backends
from services.export.sinks.base import (
    NO_METADATA,
    Bucket,
    LogRecord,
    MetricFamily,
    MetricSample,
    estimated_size,
)
from services.export.window import Window

__all__ = ["WINDOW", "Source"]

#: Entries kept for the destinations to share, about 65 MB decoded: ten pages of the most a
#: read returns, so that destinations that drift apart in a burst of ingest still share.
WINDOW = 100_000


def _loads(text: str | bytes):
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        # The logs service owns the stored form; what orjson refuses (a lone surrogate's
        # escape, a number beyond a double) must not stall the export.
        return json.loads(text)


def _metadata(text: str):
    return _loads(text) if text else NO_METADATA


def _record(position: int, ts: int, level: str, service: str, message: str,
            metadata: Mapping[str, Any]) -> LogRecord:
    # The size is estimated here, once per entry read, rather than by each destination.
    return LogRecord(position, ts, level, service, message, metadata,
                     estimated_size(service, message, metadata))


_as_record = partial(tuple.__new__, LogRecord)


def _ns(stamp) -> int:
    return stamp.seconds * 10**9 + stamp.nanos


class Source:
    """Stored log entries after a position, and the metric catalogue now.

    Reads of log entries go through one :class:`~services.export.window.Window`;
    ``fresh`` is how long a destination that has caught up is answered from it
    before the logs service is asked again.
    """

    def __init__(self, backends: Backends, timeout: float, *, fresh: float,
                 window: int = WINDOW):
        self.backends = backends
        self.timeout = timeout
        self.fresh = fresh
        self.window = Window(window)
        self._reading = asyncio.Lock()

    async def logs_after(self, position: int, limit: int) -> tuple[list[LogRecord], int]:
        """Up to ``limit`` entries after ``position``, oldest first, and the highest id stored."""
        window = self.window
        if window.covers(position):
            records = window.after(position, limit)
            if len(records) == limit or window.fresh(time.monotonic(), self.fresh):
                return records, window.high
        elif position < window.start:
            return await self._read(position, limit)
        async with self._reading:  # one read at a time extends the window; the others wait
            if position < window.start:
                return await self._read(position, limit)
            if not window.covers(position):
                window.add(position, *await self._read(position, limit), limit, time.monotonic(),
                           position)
            elif len(window.after(position, limit)) < limit and \
                    not window.fresh(time.monotonic(), self.fresh):
                after = window.end
                window.add(after, *await self._read(after, limit), limit, time.monotonic(),
                           position)
            return window.after(position, limit), window.high

    async def _read(self, after: int, limit: int) -> tuple[list[LogRecord], int]:
        reply = await self.backends.stub("logs").ReadLogsAfter(
            logs_service_pb2.ReadLogsAfterRequest(
                after_id=after, page_size=limit,
                format=logs_service_pb2.STORED_ENTRIES_FORMAT_JSON), timeout=self.timeout)
        if reply.entries:
            # A logs service of an earlier version (a rolling upgrade) sent messages.
            return [_record(e.id, e.time_unix_nano, e.level, e.service, e.message,
                            _metadata(e.metadata_json)) for e in reply.entries], reply.high_id
        # Each row is a record's fields in order, the size the logs service counted (its
        # texts and a row's overhead) last, which bounds batches. Made records in C alone:
        # parsing a page and making its records took a sixth more CPU with a call to the
        # records' constructor per entry.
        rows = _loads(reply.entries_json)
        for row in rows:
            if row[5] is None:
                row[5] = NO_METADATA
        return list(map(_as_record, rows)), reply.high_id

    async def metric_families(self) -> list[MetricFamily]:
        reply = await self.backends.stub("metrics").ListMetricFamilies(
            metrics_service_pb2.ListMetricFamiliesRequest(), timeout=self.timeout)
        now = _ns(reply.sample_time)
        return [MetricFamily(
            name=f.name, kind=f.type, help=f.help, unit=f.unit, timestamp_ns=now,
            start_ns=_ns(f.start_time),
            samples=[MetricSample(labels=dict(s.labels), value=s.value,
                                  buckets=[Bucket(b.upper_bound, int(b.cumulative_count))
                                           for b in s.buckets],
                                  sum=s.sum, count=int(s.count)) for s in f.samples])
            for f in reply.families]
