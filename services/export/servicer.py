"""``botmon.export.v1.ExportService``: proto in, proto out."""

from __future__ import annotations

import time

from google.protobuf import timestamp_pb2

from botmon.export.v1 import destination_pb2, export_service_pb2, export_service_pb2_grpc
from botmon.runtime.errors import InvalidArgument, NotFound
from services.export.ledger import Ledger, State
from services.export.loop import Destination
from services.export.sinks.base import LogRecord, SinkError

__all__ = ["ExportServicer"]


def _stamp(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def _destination(state: State, endpoint: str) -> destination_pb2.Destination:
    message = destination_pb2.Destination(
        name=state.name, status="degraded" if state.failing_since is not None else "running",
        endpoint=endpoint, position=state.position, sent=state.sent, failed=state.failed,
        skipped=state.skipped, lag_seconds=state.lag, backlog=state.backlog,
        last_error=state.last_error, holder=state.holder, metrics_sent=state.metrics_sent,
        metrics_failed=state.metrics_failed)
    if state.last_success is not None:
        message.last_success_time.CopyFrom(_stamp(state.last_success))
    if state.failing_since is not None:
        message.failing_since_time.CopyFrom(_stamp(state.failing_since))
    return message


class ExportServicer(export_service_pb2_grpc.ExportServiceServicer):
    """Answers from the shared ledger, so every replica gives the same figures."""

    def __init__(self, destinations: list[Destination], ledger: Ledger, interval: float):
        self.destinations = {d.name: d for d in destinations}
        self.ledger = ledger
        self.interval = interval

    async def ListDestinations(self, request, context):
        stored = {s.name: s for s in await self.ledger.states(list(self.destinations))}
        return export_service_pb2.ListDestinationsResponse(
            destinations=[_destination(stored.get(name, State(name)),
                                       getattr(d.sink, "endpoint", ""))
                          for name, d in self.destinations.items()],
            interval_seconds=self.interval)

    async def SendTestEntry(self, request, context):
        if not request.destination:
            raise InvalidArgument("destination is required", field="destination")
        destination = self.destinations.get(request.destination)
        if destination is None:
            configured = ", ".join(self.destinations) or "none"
            raise NotFound(f"no destination {request.destination!r} is configured "
                           f"(configured: {configured})")
        now = time.time()
        record = LogRecord(position=0, timestamp_ns=int(now * 1e9), level="info",
                           service="botmon",
                           message=request.message or f"botmon export test at {now:.3f}",
                           metadata={"test": True})
        try:
            result = await destination.send_once(destination.sink.send_logs, [record])
        except SinkError as exc:
            return export_service_pb2.SendTestEntryResponse(accepted=False, error=str(exc))
        if result.retry or result.rejected:
            return export_service_pb2.SendTestEntryResponse(
                accepted=False, error="the destination refused the entry")
        return export_service_pb2.SendTestEntryResponse(accepted=True)
