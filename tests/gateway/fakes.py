"""Small test servicers of the real proto services: they record what the gateway sent.

Served on real in-process gRPC servers by ``tests.harness.Suite(servicers=...)``.
"""

from __future__ import annotations

import asyncio

import orjson
from google.api import httpbody_pb2
from google.protobuf import struct_pb2, timestamp_pb2

from botmon.alerts.v1 import alert_pb2, alerts_service_pb2, alerts_service_pb2_grpc
from botmon.health.v1 import health_pb2, health_service_pb2, health_service_pb2_grpc
from botmon.logs.v1 import log_entry_pb2, logs_service_pb2, logs_service_pb2_grpc
from botmon.metrics.v1 import metrics_pb2, metrics_service_pb2, metrics_service_pb2_grpc
from botmon.runtime import errors

#: ``q`` values that make RecordingLogs.ListLogs raise the named domain error.
DOMAIN_ERRORS = {
    "INVALID_ARGUMENT": errors.InvalidArgument,
    "NOT_FOUND": errors.NotFound,
    "ALREADY_EXISTS": errors.AlreadyExists,
    "FAILED_PRECONDITION": errors.FailedPrecondition,
    "PERMISSION_DENIED": errors.PermissionDenied,
    "UNAUTHENTICATED": errors.Unauthenticated,
    "RESOURCE_EXHAUSTED": errors.ResourceExhausted,
    "UNAVAILABLE": errors.Unavailable,
    "DEADLINE_EXCEEDED": errors.DeadlineExceeded,
}


def _ts(seconds: int, nanos: int = 0) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


class Recorder:
    """Keeps each request and its invocation metadata."""

    def __init__(self):
        self.calls: list[tuple[str, object, dict[str, str]]] = []

    def record(self, name: str, request, context) -> None:
        self.calls.append((name, request, dict(context.invocation_metadata() or ())))

    def last(self, name: str):
        return next((req, md) for n, req, md in reversed(self.calls) if n == name)


class RecordingLogs(logs_service_pb2_grpc.LogsServiceServicer, Recorder):
    """ListLogs echoes its query; ``q=raise:<CODE>`` raises, ``q=sleep:<s>`` sleeps."""

    def __init__(self):
        Recorder.__init__(self)
        self.tail_updates: asyncio.Queue = asyncio.Queue()
        self.tail_cancelled = asyncio.Event()

    async def ListLogs(self, request, context):
        self.record("ListLogs", request, context)
        if request.q.startswith("raise:"):
            code = request.q.split(":", 1)[1]
            if code == "INTERNAL":
                raise RuntimeError("boom")
            raise DOMAIN_ERRORS[code](f"test error {code}")
        if request.q.startswith("sleep:"):
            await asyncio.sleep(float(request.q.split(":", 1)[1]))
        metadata = struct_pb2.Struct()
        metadata.update({"request_id": "req_123", "duration_ms": 150, "ratio": 0.5})
        entry = log_entry_pb2.LogEntry(timestamp=_ts(1705312800), level="info",
                                       service="web_server", message="hello",
                                       metadata=metadata, id=2**53 + 1)
        bare = log_entry_pb2.LogEntry(level="", service="", message="")
        query = log_entry_pb2.LogQuery(level=request.level or "all", limit=request.limit,
                                       service=request.service, q=request.q,
                                       order=request.order, metadata=dict(request.metadata))
        if request.HasField("start_time"):
            query.start_time.CopyFrom(request.start_time)
        if request.HasField("end_time"):
            query.end_time.CopyFrom(request.end_time)
        return logs_service_pb2.ListLogsResponse(logs=[entry, bare], total=2**62, query=query)

    async def WriteLogsHttp(self, request, context):
        """Accepts every entry of the body it is passed, unchecked."""
        self.record("WriteLogsHttp", request, context)
        return logs_service_pb2.WriteLogsHttpResponse(
            accepted=len(orjson.loads(request.body.data)["logs"]))

    async def PushLoki(self, request, context):
        self.record("PushLoki", request, context)
        return logs_service_pb2.PushLokiResponse(
            accepted=sum(len(s.values) for s in request.streams))

    async def GetErrorSummary(self, request, context):
        self.record("GetErrorSummary", request, context)
        return logs_service_pb2.GetErrorSummaryResponse(summary=log_entry_pb2.ErrorSummary(
            total_errors=3, errors_by_type={"timeout_error": 2**40}, period=request.period))

    async def TailLogs(self, request, context):
        self.record("TailLogs", request, context)
        try:
            while True:
                yield await self.tail_updates.get()
        finally:
            self.tail_cancelled.set()


class RecordingAlerts(alerts_service_pb2_grpc.AlertsServiceServicer, Recorder):
    """Configure answers 201 for a new rule name (x-http-code), 200 for a known one."""

    def __init__(self):
        Recorder.__init__(self)
        self.rules: dict[str, alert_pb2.AlertRule] = {}

    async def ConfigureAlertRule(self, request, context):
        self.record("ConfigureAlertRule", request, context)
        created = request.rule.name not in self.rules
        self.rules[request.rule.name] = request.rule
        if created:
            await context.send_initial_metadata((("x-http-code", "201"),))
        return alerts_service_pb2.ConfigureAlertRuleResponse(rule=request.rule, created=created)

    async def DeleteAlertRule(self, request, context):
        self.record("DeleteAlertRule", request, context)
        if self.rules.pop(request.name, None) is None:
            raise errors.NotFound(f"no rule named {request.name!r}")
        return alerts_service_pb2.DeleteAlertRuleResponse(name=request.name)

    async def AcknowledgeAlert(self, request, context):
        self.record("AcknowledgeAlert", request, context)
        if request.alert_id != "alt_1":
            raise errors.NotFound(f"no alert {request.alert_id!r}")
        return alerts_service_pb2.AcknowledgeAlertResponse(alert=alert_pb2.Alert(
            alert_id=request.alert_id, acknowledged=True, notes=request.notes,
            acknowledged_by=request.acknowledged_by))

    async def CreateSilence(self, request, context):
        self.record("CreateSilence", request, context)
        return alerts_service_pb2.CreateSilenceResponse(silence=request.silence)

    async def ListAlerts(self, request, context):
        self.record("ListAlerts", request, context)
        return alerts_service_pb2.ListAlertsResponse()


class RecordingMetrics(metrics_service_pb2_grpc.MetricsServiceServicer, Recorder):
    """Prometheus text in the requested format; StreamMetrics ticks from a queue."""

    def __init__(self):
        Recorder.__init__(self)
        self.stream_cancelled = asyncio.Event()
        self.ticks = 0
        #: Updates per tick instead of one per metric, to flood a slow reader.
        self.burst = 0

    async def GetPrometheusMetrics(self, request, context):
        self.record("GetPrometheusMetrics", request, context)
        text = ("# HELP botserver_requests_total Total number of requests\n"
                "# TYPE botserver_requests_total counter\n"
                'botserver_requests_total{method="GET",status="200"} 7\n')
        if request.format == "openmetrics":
            text = ("# HELP botserver_requests Total number of requests\n"
                    "# TYPE botserver_requests counter\n"
                    'botserver_requests_total{method="GET",status="200"} 7\n# EOF\n')
            kind = "application/openmetrics-text; version=1.0.0; charset=utf-8"
        else:
            kind = "text/plain; version=0.0.4; charset=utf-8"
        return metrics_service_pb2.GetPrometheusMetricsResponse(
            body=httpbody_pb2.HttpBody(content_type=kind, data=text.encode()))

    async def GetSystemMetrics(self, request, context):
        self.record("GetSystemMetrics", request, context)
        return metrics_service_pb2.GetSystemMetricsResponse(
            system=metrics_pb2.SystemMetrics(network=metrics_pb2.NetworkMetrics(
                bytes_sent=2**40)), timestamp=_ts(1705312800, 5_000_000))

    async def StreamMetrics(self, request, context):
        self.record("StreamMetrics", request, context)
        names = list(request.metrics) or ["cpu_usage", "memory_usage"]
        if self.burst:
            names = [f"metric_{i}" for i in range(self.burst)]
        try:
            while True:
                self.ticks += 1
                yield metrics_service_pb2.StreamMetricsResponse(updates=[
                    metrics_pb2.MetricUpdate(type="metric_update", metric=n,
                                             value=float(self.ticks), timestamp=_ts(1705312800))
                    for n in names])
                await asyncio.sleep(min(request.interval_seconds, 0.05))
        finally:
            self.stream_cancelled.set()


class ScriptedHealth(health_service_pb2_grpc.HealthServiceServicer, Recorder):
    """WatchHealth sends the current document, then whatever the test puts in ``updates``."""

    def __init__(self, status: str = "healthy"):
        Recorder.__init__(self)
        self.updates: asyncio.Queue = asyncio.Queue()
        self.detailed = detailed(status)

    async def WatchHealth(self, request, context):
        yield health_service_pb2.WatchHealthResponse(health=self.detailed)
        while True:
            self.detailed = await self.updates.get()
            yield health_service_pb2.WatchHealthResponse(health=self.detailed)

    async def GetDetailedHealth(self, request, context):
        self.record("GetDetailedHealth", request, context)
        return self.detailed

    async def Heartbeat(self, request, context):
        self.record("Heartbeat", request, context)
        return health_service_pb2.HeartbeatResponse(expire_time=_ts(1705312800))

    async def Deregister(self, request, context):
        return health_service_pb2.DeregisterResponse()


class ScriptedStatus(ScriptedHealth):
    """ScriptedHealth with a status list: WatchStatus sends the current list, then each one
    the test puts in ``lists``; GetStatus answers ``current``, which a test may change
    without streaming it. With ``silent_rewatch``, a stream opened again (the gateway
    reconnecting) sends nothing until a list is put."""

    def __init__(self):
        super().__init__()
        self.lists: asyncio.Queue = asyncio.Queue()
        self.current = status_list("running")
        self.silent_rewatch = False
        self.watches = 0

    async def WatchStatus(self, request, context):
        self.watches += 1
        if self.watches == 1 or not self.silent_rewatch:
            yield health_service_pb2.WatchStatusResponse(status=self.current)
        while True:
            self.current = await self.lists.get()
            yield health_service_pb2.WatchStatusResponse(status=self.current)

    async def GetStatus(self, request, context):
        self.record("GetStatus", request, context)
        return self.current


def status_list(state: str) -> health_service_pb2.GetStatusResponse:
    """A one-entry status list whose service ``web_server`` is in ``state``."""
    return health_service_pb2.GetStatusResponse(
        services=[health_pb2.ServiceStatus(name="web_server", status=state, port=8080, pid=1234,
                                           instance_id="web-1")],
        timestamp=_ts(1705312800))


def detailed(status: str) -> health_service_pb2.GetDetailedHealthResponse:
    """A detailed health document with every component in ``status`` except llm."""
    checked = _ts(1705312800)
    return health_service_pb2.GetDetailedHealthResponse(
        status=status, timestamp=checked, version="1.0.0",
        components=health_pb2.Components(
            database=health_pb2.DatabaseHealth(
                status=status, latency_ms=2.5, checked_at=checked,
                connection_pool=health_pb2.ConnectionPool(active=5, idle=15, max=20),
                reason="" if status == "healthy" else "slow"),
            cache=health_pb2.CacheHealth(status=status, latency_ms=1.0, memory_used_mb=256,
                                         hit_rate=0.92, checked_at=checked),
            storage=health_pb2.StorageHealth(status="healthy", latency_ms=0.2,
                                             available_gb=450, used_gb=50, checked_at=checked),
            llm=health_pb2.LlmHealth(status="not_configured", checked_at=checked)))
