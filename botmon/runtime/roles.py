"""The role each RPC needs: one table for every gRPC port and for the gateway's routes.

CONTRACT.md §11: reads need viewer, writes operator, debug admin. A service or
RPC added to the protos gets its row here (a test fails until it has one); an
RPC without a row is refused to everyone.
"""

from __future__ import annotations

from grpc_health.v1 import health
from grpc_reflection.v1alpha import reflection

__all__ = ["OPEN_SERVICES", "RPC_ROLES", "required_role"]

#: Services answered without credentials: probes and grpcurl's discovery.
OPEN_SERVICES = frozenset({
    health.SERVICE_NAME,
    reflection.SERVICE_NAME,
    "grpc.reflection.v1.ServerReflection",
})

_VIEWER, _OPERATOR, _ADMIN = "viewer", "operator", "admin"

#: Full service name -> {method -> lowest role that may call it}.
RPC_ROLES: dict[str, dict[str, str]] = {
    "botmon.health.v1.HealthService": {
        "GetHealth": _VIEWER,
        "GetDetailedHealth": _VIEWER,
        "WatchHealth": _VIEWER,
        "GetStatus": _VIEWER,
        "WatchStatus": _VIEWER,
        "GetDatabaseResources": _VIEWER,
        "GetCacheResources": _VIEWER,
        # A process announcing itself changes what GetStatus lists: a write.
        "Heartbeat": _OPERATOR,
        "Deregister": _OPERATOR,
    },
    "botmon.metrics.v1.MetricsService": {
        "GetSystemMetrics": _VIEWER,
        "GetApplicationMetrics": _VIEWER,
        "GetPerformanceMetrics": _VIEWER,
        "GetPrometheusMetrics": _VIEWER,
        "GetGrafanaDashboard": _VIEWER,
        "GetMetricValues": _VIEWER,
        "ListMetricFamilies": _VIEWER,
        "StreamMetrics": _VIEWER,
        "RecordEvents": _OPERATOR,
        "RecordEventsHttp": _OPERATOR,
        "StreamEvents": _OPERATOR,
    },
    "botmon.alerts.v1.AlertsService": {
        "ListAlerts": _VIEWER,
        "ListAlertRules": _VIEWER,
        "ListAlertHistory": _VIEWER,
        "ListSilences": _VIEWER,
        "ConfigureAlertRule": _OPERATOR,
        "DeleteAlertRule": _OPERATOR,
        "TestAlertRule": _OPERATOR,
        "AcknowledgeAlert": _OPERATOR,
        "CreateSilence": _OPERATOR,
        "ExpireSilence": _OPERATOR,
    },
    "botmon.logs.v1.LogsService": {
        "ListLogs": _VIEWER,
        "TailLogs": _VIEWER,
        "GetErrorSummary": _VIEWER,
        "ReadLogsAfter": _VIEWER,
        "WriteLogs": _OPERATOR,
        "WriteLogsHttp": _OPERATOR,
        "IngestLogs": _OPERATOR,
        "PushLoki": _OPERATOR,
    },
    "botmon.export.v1.ExportService": {
        "ListDestinations": _VIEWER,
        # Sends to a third party on demand: a write.
        "SendTestEntry": _OPERATOR,
    },
    "botmon.loki.v1.PushService": {
        "Push": _OPERATOR,
    },
    "opentelemetry.proto.collector.logs.v1.LogsService": {
        "Export": _OPERATOR,
    },
    "botmon.debug.v1.DebugService": {
        "GetDebugInfo": _ADMIN,
    },
}

#: ``/package.Service/Method`` (as gRPC names a call) -> role; built once from the table.
_BY_PATH = {f"/{service}/{method}": role
            for service, methods in RPC_ROLES.items() for method, role in methods.items()}


def required_role(path: str) -> str | None:
    """The role ``/package.Service/Method`` needs; None when it has no row."""
    return _BY_PATH.get(path)
