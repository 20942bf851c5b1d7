"""LogsService: proto in, proto out; the work is done by the modules it calls.

A batch in which no entry is valid is refused with INVALID_ARGUMENT (HTTP 400)
listing what to fix — nothing was stored, so a client must not read it as
success — and the per-entry errors also travel as ``google.rpc.BadRequest``
details. A batch with at least one valid entry succeeds (partial success) and
lists the rejected entries in ``errors``.
"""

from __future__ import annotations

import asyncio
import json

import grpc
from google.api import httpbody_pb2
from google.protobuf import any_pb2, timestamp_pb2
from google.rpc import error_details_pb2, status_pb2

from botmon.logs.v1 import log_entry_pb2, logs_service_pb2, logs_service_pb2_grpc
from botmon.runtime.errors import InvalidArgument
from services.logs.committer import GroupCommitter
from services.logs.ingest import (
    MAX_PUSH_LINES,
    Batch,
    Rejected,
    check_batch_size,
    validate_entries,
)
from services.logs.json_body import read_logs
from services.logs.json_page import CONTENT_TYPE, render_page
from services.logs.levels import NAMES
from services.logs.loki import read_push
from services.logs.query import Position, build_filter, build_query
from services.logs.request_counts import RequestCounts
from services.logs.row import Row
from services.logs.store import LogStore
from services.logs.summary import summarise_errors
from services.logs.tail import TailHub

__all__ = ["LogsServicer", "describe", "entry", "entry_errors", "nothing_stored"]

#: Rejected entries reported by IngestLogs (the counts cover all of them).
MAX_STREAM_ERRORS = 100
#: Entries per ReadLogsAfter page: default and most.
READ_PAGE = 1000
MAX_READ_PAGE = 10_000
#: Entries per TailLogs message at most.
TAIL_BATCH = 500
#: Batches of one IngestLogs stream committing at once (read-ahead while committing).
STREAM_WINDOW = 4


def _timestamp(ns: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=ns // 10**9, nanos=ns % 10**9)


def _ns(stamp: timestamp_pb2.Timestamp) -> int:
    return stamp.seconds * 10**9 + stamp.nanos


def entry(row: Row) -> log_entry_pb2.LogEntry:
    """A stored row as the API's ``LogEntry``."""
    message = log_entry_pb2.LogEntry(timestamp=_timestamp(row.ts), level=NAMES[row.level],
                                     service=row.service, message=row.message, id=row.id)
    if row.metadata:
        message.metadata.update(json.loads(row.metadata))
    return message


def entry_errors(rejected: list[Rejected]) -> list[log_entry_pb2.EntryError]:
    return [log_entry_pb2.EntryError(index=r.index, message=r.message, batch=r.batch)
            for r in rejected]


def describe(rejected: list[Rejected], where: str) -> str:
    """The first rejected entries and what to fix, in one line.

    ``where`` names an entry from its ``{index}`` and ``{batch}``, e.g. ``logs[{index}]``.
    """
    shown = "; ".join(f"{where.format_map(vars(r))}: {r.message}" for r in rejected[:5])
    more = f" (and {len(rejected) - 5} more)" if len(rejected) > 5 else ""
    return shown + more


def nothing_stored(context: grpc.aio.ServicerContext, batch: Batch, where: str
                   ) -> InvalidArgument:
    """INVALID_ARGUMENT for a batch without a valid entry, with BadRequest details."""
    message = f"no entry was stored, every one is invalid: {describe(batch.errors, where)}"
    details = any_pb2.Any()
    details.Pack(error_details_pb2.BadRequest(field_violations=[
        error_details_pb2.BadRequest.FieldViolation(field=where.format_map(vars(r)),
                                                    description=r.message)
        for r in batch.errors[:MAX_STREAM_ERRORS]]))
    status = status_pb2.Status(code=grpc.StatusCode.INVALID_ARGUMENT.value[0], message=message,
                               details=[details])
    context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
    return InvalidArgument(message)


class LogsServicer(logs_service_pb2_grpc.LogsServiceServicer):
    """Stores, searches, tails and summarises logs."""

    def __init__(self, store: LogStore, committer: GroupCommitter, hub: TailHub,
                 requests: RequestCounts):
        self.store = store
        self.committer = committer
        self.hub = hub
        self.requests = requests

    async def WriteLogs(self, request, context):
        problem = check_batch_size(len(request.logs))
        if problem:
            raise InvalidArgument(problem)
        batch = validate_entries(request.logs)
        return logs_service_pb2.WriteLogsResponse(accepted=len(batch.entries),
                                                  errors=await self._store(batch, context))

    async def WriteLogsHttp(self, request, context):
        batch = read_logs(request.body.data)
        return logs_service_pb2.WriteLogsHttpResponse(accepted=len(batch.entries),
                                                      errors=await self._store(batch, context))

    async def _store(self, batch: Batch, context) -> list[log_entry_pb2.EntryError]:
        """Commit a written batch; its rejected entries, or INVALID_ARGUMENT if all are."""
        if not batch.entries:
            raise nothing_stored(context, batch, "logs[{index}]")
        await self.committer.submit(batch.entries)
        return entry_errors(batch.errors)

    async def IngestLogs(self, request_iterator, context):
        accepted = rejected = 0
        errors: list[Rejected] = []
        inflight: set[asyncio.Task] = set()
        try:
            index = 0
            async for message in request_iterator:
                problem = check_batch_size(len(message.logs), f"batch {index}")
                if problem:
                    await asyncio.gather(*inflight)
                    raise InvalidArgument(f"{problem}; {accepted} entries of earlier batches "
                                          "were stored")
                batch = validate_entries(message.logs)
                rejected += len(batch.errors)
                room = MAX_STREAM_ERRORS - len(errors)
                errors.extend(Rejected(r.index, r.message, index) for r in batch.errors[:room])
                if batch.entries:
                    accepted += len(batch.entries)
                    inflight.add(asyncio.ensure_future(self.committer.submit(batch.entries)))
                if len(inflight) >= STREAM_WINDOW:
                    done, inflight = await asyncio.wait(inflight,
                                                        return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        task.result()
                index += 1
            await asyncio.gather(*inflight)
        finally:
            for task in inflight:
                task.cancel()
        return logs_service_pb2.IngestLogsResponse(accepted=accepted, rejected=rejected,
                                                   errors=entry_errors(errors))

    async def PushLoki(self, request, context):
        if not request.streams:
            raise InvalidArgument("streams is empty: send at least one stream with values")
        lines = sum(len(s.values) for s in request.streams)
        if lines > MAX_PUSH_LINES:
            raise InvalidArgument(f"the push has {lines} lines; send at most {MAX_PUSH_LINES}")
        batch = read_push(request)
        if not batch.entries:
            raise nothing_stored(context, batch, "values[{index}]")
        await self.committer.submit(batch.entries)
        return logs_service_pb2.PushLokiResponse(accepted=len(batch.entries),
                                                 errors=entry_errors(batch.errors))

    async def ListLogs(self, request, context):
        log_filter = build_filter(request.level, request.service, request.q, request.metadata)
        query = build_query(
            log_filter,
            start=_ns(request.start_time) if request.HasField("start_time") else None,
            end=_ns(request.end_time) if request.HasField("end_time") else None,
            order=request.order, limit=request.limit, cursor=request.cursor)
        if request.page_format == logs_service_pb2.LOG_PAGE_FORMAT_JSON:
            rendered = await self.store.list_json(query)
            next_cursor = "" if rendered.last is None else query.cursor(
                Position(*rendered.last, rendered.high_id))
            body = render_page(rendered.entries, rendered.total, log_filter, query,
                               request.metadata, next_cursor)
            return logs_service_pb2.ListLogsResponse(
                body=httpbody_pb2.HttpBody(content_type=CONTENT_TYPE, data=body))
        page = await self.store.list(query)
        rows = page.rows[:query.limit]
        next_cursor = ""
        if len(page.rows) > query.limit:
            last = rows[-1]
            next_cursor = query.cursor(Position(last.ts, last.id, page.high_id))
        echo = log_entry_pb2.LogQuery(level=log_filter.level_name, limit=query.limit,
                                      service=log_filter.service, q=log_filter.q,
                                      order=query.order, metadata=dict(request.metadata))
        if query.start is not None:
            echo.start_time.CopyFrom(_timestamp(query.start))
        if query.end is not None:
            echo.end_time.CopyFrom(_timestamp(query.end))
        return logs_service_pb2.ListLogsResponse(logs=[entry(r) for r in rows],
                                                 total=page.total, query=echo,
                                                 next_cursor=next_cursor)

    async def TailLogs(self, request, context):
        log_filter = build_filter(request.level, request.service, request.q, request.metadata)
        with self.hub.subscribe(log_filter) as subscription:
            # An empty first message confirms the subscription: entries stored from now on
            # will be delivered.
            yield logs_service_pb2.TailLogsResponse()
            while True:
                rows = await subscription.next_batch(TAIL_BATCH)
                yield logs_service_pb2.TailLogsResponse(logs=[entry(r) for r in rows],
                                                        dropped=subscription.dropped)

    async def ReadLogsAfter(self, request, context):
        if request.after_id < 0:
            raise InvalidArgument("after_id must be 0 or more", field="after_id")
        if not 0 <= request.page_size <= MAX_READ_PAGE:
            raise InvalidArgument(f"page_size must be 1 to {MAX_READ_PAGE}", field="page_size")
        size = request.page_size or READ_PAGE
        if request.format == logs_service_pb2.STORED_ENTRIES_FORMAT_JSON:
            entries, high = await self.store.read_after_json(request.after_id, size)
            return logs_service_pb2.ReadLogsAfterResponse(high_id=high, entries_json=entries)
        rows, high = await self.store.read_after(request.after_id, size)
        reply = logs_service_pb2.ReadLogsAfterResponse(high_id=high)
        # Added in place: half the cost of building each entry and then the list of them.
        add = reply.entries.add
        for r in rows:
            add(id=r.id, time_unix_nano=r.ts, level=NAMES[r.level], service=r.service,
                message=r.message, metadata_json=r.metadata or "")
        return reply

    async def GetErrorSummary(self, request, context):
        summary = await summarise_errors(self.store, self.requests, request.period)
        result = log_entry_pb2.ErrorSummary(
            total_errors=summary.total_errors, errors_by_type=summary.by_type,
            errors_by_service=summary.by_service, error_rate=summary.error_rate,
            period=summary.period, total_requests=summary.total_requests,
            requests_source=summary.requests_source)
        if summary.last_error is not None:
            result.last_error_time.CopyFrom(_timestamp(summary.last_error))
        computed = timestamp_pb2.Timestamp()
        computed.GetCurrentTime()
        return logs_service_pb2.GetErrorSummaryResponse(summary=result, timestamp=computed)
