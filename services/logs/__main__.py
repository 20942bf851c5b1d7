"""The logs service: wiring only."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc as otlp_grpc

from botmon.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from botmon.loki.v1 import push_service_pb2, push_service_pb2_grpc
from botmon.runtime.audit import DataDirOutbox
from botmon.runtime.config import Settings
from botmon.runtime.main import run_service
from botmon.runtime.pubsub import channel_name
from botmon.runtime.server import Binding, GrpcServer
from services.logs.audit_outbox import OutboxDrain
from services.logs.committer import GroupCommitter
from services.logs.config import LogsSettings
from services.logs.fanout import RedisFanout
from services.logs.request_counts import RequestCounts
from services.logs.retention import Retention
from services.logs.row import NewEntry, stored_rows
from services.logs.servicer import LogsServicer
from services.logs.shippers import LokiPushServicer, OtlpLogsServicer
from services.logs.store import open_store
from services.logs.tail import TailHub

SERVICE_NAME = logs_service_pb2.DESCRIPTOR.services_by_name["LogsService"].full_name
#: Served beside it for log shippers: OTLP logs, and Loki's protobuf push.
OTLP_SERVICE_NAME = "opentelemetry.proto.collector.logs.v1.LogsService"
LOKI_SERVICE_NAME = push_service_pb2.DESCRIPTOR.services_by_name["PushService"].full_name


async def create_server(settings: Settings, *, address: str | None = None,
                        logs_settings: LogsSettings | None = None) -> GrpcServer:
    """Build the logs service's server (not started; its store is open)."""
    logs_settings = logs_settings or LogsSettings.from_env()
    store = open_store(settings, logs_settings)
    await store.open()
    hub = TailHub(logs_settings.tail_buffer)
    retention = Retention(store, logs_settings)
    fanout = None
    if settings.redis_url:
        # Unique per server, not per process: tests run several replicas in one process.
        origin = f"{settings.instance_id}/{secrets.token_hex(4)}"
        channel = logs_settings.fanout_channel or channel_name(settings.redis_url, "logs:tail")
        fanout = RedisFanout(settings.redis_url, channel, hub, origin,
                             timeout=settings.grpc_deadline)

    def committed(entries: list[NewEntry], ids: Sequence[int]) -> None:
        retention.added(len(entries), sum(e[5] for e in entries))
        # Rows are built only when someone tails: ingest stays cheap otherwise.
        remote = fanout is not None and fanout.wanted
        if len(hub) or remote:
            rows = stored_rows(entries, ids)
            hub.publish(rows)
            if remote:
                fanout.publish(rows)

    committer = GroupCommitter(store, max_rows=logs_settings.commit_max_rows,
                               on_commit=committed)

    def details() -> dict:
        return {"store": store.kind, "retention": retention.report(), "tails": len(hub),
                "tail_fanout": fanout.state if fanout else "this replica only (no Redis)",
                "commits": committer.commits, "committed_entries": committer.committed_rows}

    server = GrpcServer("logs", settings, [], address=address, extra_settings=(logs_settings,),
                        details=details)
    servicer = LogsServicer(store, committer, hub, RequestCounts(server.backends))
    server.bindings = [
        Binding(SERVICE_NAME, servicer, logs_service_pb2_grpc.add_LogsServiceServicer_to_server),
        Binding(OTLP_SERVICE_NAME, OtlpLogsServicer(committer),
                otlp_grpc.add_LogsServiceServicer_to_server),
        Binding(LOKI_SERVICE_NAME, LokiPushServicer(committer),
                push_service_pb2_grpc.add_PushServiceServicer_to_server),
    ]
    # Secrets bootstrapped into the data dir are audited through it (botmon.runtime.audit).
    audit = OutboxDrain(DataDirOutbox(settings.data_dir), committer)
    committer.start()
    audit.start()
    retention.start()
    if fanout:
        fanout.start()

    async def stop() -> None:
        await audit.stop()
        await committer.stop()
        await retention.stop()
        if fanout:
            await fanout.stop()
        await store.close()

    server.on_stop.append(stop)
    return server


if __name__ == "__main__":
    run_service("logs", create_server)
