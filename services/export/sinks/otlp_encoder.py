"""Log records and metric families as OTLP protobuf requests (opentelemetry-proto).

Shared by every destination that speaks OTLP (the OTLP and New Relic sinks).
Severities follow the OpenTelemetry log data model; counters become cumulative
monotonic sums, gauges gauges, histograms explicit-bucket histograms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from botmon import __version__
from services.export.sinks.base import LogRecord, MetricFamily

__all__ = ["SEVERITIES", "Encoder"]

#: Stored level -> (SeverityNumber, SeverityText) of the OpenTelemetry log data model.
SEVERITIES = {
    "debug": (logs_pb2.SEVERITY_NUMBER_DEBUG, "DEBUG"),
    "info": (logs_pb2.SEVERITY_NUMBER_INFO, "INFO"),
    "warn": (logs_pb2.SEVERITY_NUMBER_WARN, "WARN"),
    "error": (logs_pb2.SEVERITY_NUMBER_ERROR, "ERROR"),
}

_CUMULATIVE = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE


# Values and attributes are built as dicts, which the generated message constructors and
# ``add()`` take directly: about three times cheaper than nesting message objects.

def any_value(value: Any) -> dict:
    """A JSON value as an OTLP AnyValue; integral numbers become ints."""
    if isinstance(value, str):
        return {"string_value": value}
    if isinstance(value, bool):
        return {"bool_value": value}
    if isinstance(value, int):
        return {"int_value": value} if -2**63 <= value < 2**63 else {"double_value": value}
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 2**63:
            return {"int_value": int(value)}
        return {"double_value": value}
    if isinstance(value, Mapping):
        return {"kvlist_value": {"values": attributes(value)}}
    if isinstance(value, list | tuple):
        return {"array_value": {"values": [any_value(v) for v in value]}}
    return {}  # JSON null: an empty value


def attributes(pairs: Mapping[str, Any]) -> list[dict]:
    return [{"key": key, "value": {"string_value": value} if isinstance(value, str)
             else any_value(value)} for key, value in pairs.items()]


class Encoder:
    """Builds export requests with the resource attributes of the configuration."""

    def __init__(self, service_name: str, resource: Mapping[str, str]):
        self.service_name = service_name
        self.resource = dict(resource)
        self.scope = InstrumentationScope(name="botmon", version=__version__)

    def _resource(self, service: str) -> Resource:
        return Resource(attributes=attributes({**self.resource, "service.name": service}))

    def logs(self, records: Sequence[LogRecord]) -> ExportLogsServiceRequest:
        """One ResourceLogs per service (``service.name`` is the entry's service)."""
        request = ExportLogsServiceRequest()
        by_service: dict[str, Any] = {}
        for record in records:
            scope_logs = by_service.get(record.service)
            if scope_logs is None:
                resource_logs = request.resource_logs.add(resource=self._resource(record.service))
                scope_logs = by_service[record.service] = resource_logs.scope_logs.add(
                    scope=self.scope)
            number, text = SEVERITIES.get(record.level, (logs_pb2.SEVERITY_NUMBER_UNSPECIFIED,
                                                         record.level.upper()))
            log_record = scope_logs.log_records.add(
                time_unix_nano=record.timestamp_ns, observed_time_unix_nano=record.timestamp_ns,
                severity_number=number, severity_text=text)
            # Fields set in place: a quarter cheaper than the same values given as dicts.
            log_record.body.string_value = record.message
            put = log_record.attributes.add
            for key, value in record.metadata.items():
                if type(value) is str:
                    put(key=key).value.string_value = value
                else:
                    put(key=key, value=any_value(value))
        return request

    def metrics(self, families: Sequence[MetricFamily]) -> ExportMetricsServiceRequest:
        """One ResourceMetrics whose ``service.name`` is OTEL_SERVICE_NAME."""
        request = ExportMetricsServiceRequest()
        scope_metrics = request.resource_metrics.add(
            resource=self._resource(self.service_name)).scope_metrics.add(scope=self.scope)
        for family in families:
            metric = scope_metrics.metrics.add(name=family.name, description=family.help,
                                               unit=family.unit)
            if family.kind == "histogram":
                metric.histogram.aggregation_temporality = _CUMULATIVE
                for sample in family.samples:
                    bounds = [b.upper_bound for b in sample.buckets
                              if b.upper_bound != float("inf")]
                    counts, previous = [], 0
                    for bucket in sample.buckets:
                        counts.append(bucket.count - previous)
                        previous = bucket.count
                    if len(counts) == len(bounds):  # no +Inf bucket: the overflow is empty
                        counts.append(max(0, sample.count - previous))
                    metric.histogram.data_points.add(
                        start_time_unix_nano=family.start_ns, time_unix_nano=family.timestamp_ns,
                        count=sample.count, sum=sample.sum, bucket_counts=counts,
                        explicit_bounds=bounds, attributes=attributes(sample.labels))
                continue
            if family.kind == "counter":
                metric.sum.aggregation_temporality = _CUMULATIVE
                metric.sum.is_monotonic = True
                points = metric.sum.data_points
            else:
                points = metric.gauge.data_points
            for sample in family.samples:
                # A gauge's start_ns is 0: OTLP gauges have no start.
                points.add(start_time_unix_nano=family.start_ns,
                           time_unix_nano=family.timestamp_ns, as_double=sample.value,
                           attributes=attributes(sample.labels))
        return request
