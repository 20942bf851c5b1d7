"""Servicers of the log shippers' own protocols, beside ``botmon.logs.v1``.

- ``opentelemetry.proto.collector.logs.v1.LogsService/Export`` (OTLP): an empty
  request succeeds; records that cannot be stored are counted in
  ``partial_success.rejected_log_records`` with the first reasons in
  ``error_message``, the others stored; a request with no storable record is
  INVALID_ARGUMENT, which OTLP exporters do not retry.
- ``botmon.loki.v1.PushService/Push`` (Loki's protobuf push): as ``PushLoki``.

Entries come from the decoders :mod:`services.logs.otlp` and
:mod:`services.logs.loki`, which apply the rules of ``WriteLogs``, and are
durable once the call returns.
"""

from __future__ import annotations

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as otlp_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc as otlp_grpc

from botmon.loki.v1 import push_service_pb2, push_service_pb2_grpc
from botmon.runtime.errors import InvalidArgument
from services.logs.committer import GroupCommitter
from services.logs.ingest import MAX_PUSH_LINES
from services.logs.loki import read_proto_push
from services.logs.otlp import count_records, read_export
from services.logs.servicer import describe, entry_errors, nothing_stored

__all__ = ["LokiPushServicer", "OtlpLogsServicer"]


def _check_size(lines: int, what: str) -> None:
    if lines > MAX_PUSH_LINES:
        raise InvalidArgument(f"the request has {lines} {what}; send at most {MAX_PUSH_LINES}")


class OtlpLogsServicer(otlp_grpc.LogsServiceServicer):
    """OTLP logs Export into the store."""

    def __init__(self, committer: GroupCommitter):
        self.committer = committer

    async def Export(self, request, context):
        records = count_records(request)
        if not records:
            return otlp_pb2.ExportLogsServiceResponse()
        _check_size(records, "log records")
        batch = read_export(request)
        if not batch.entries:
            raise nothing_stored(context, batch, "log_records[{index}]")
        await self.committer.submit(batch.entries)
        response = otlp_pb2.ExportLogsServiceResponse()
        if batch.errors:
            response.partial_success.rejected_log_records = len(batch.errors)
            response.partial_success.error_message = (
                f"{len(batch.errors)} of {records} log records were not stored (counting every "
                f"record of the request in order): {describe(batch.errors, 'log_records[{index}]')}")
        return response


class LokiPushServicer(push_service_pb2_grpc.PushServiceServicer):
    """Loki's protobuf push into the store."""

    def __init__(self, committer: GroupCommitter):
        self.committer = committer

    async def Push(self, request, context):
        if not request.streams:
            raise InvalidArgument("streams is empty: send at least one stream with entries")
        _check_size(sum(len(s.entries) for s in request.streams), "entries")
        batch = read_proto_push(request)
        if not batch.entries:
            raise nothing_stored(context, batch, "streams[{batch}].entries[{index}]")
        await self.committer.submit(batch.entries)
        return push_service_pb2.PushResponse(accepted=len(batch.entries),
                                             errors=entry_errors(batch.errors))
