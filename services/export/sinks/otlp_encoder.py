"""Log records and metric families as OTLP protobuf requests (opentelemetry-proto).

Shared by every destination that speaks OTLP (the OTLP and New Relic sinks).
Severities follow the OpenTelemetry log data model; counters become cumulative
monotonic sums, gauges gauges, histograms explicit-bucket histograms.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope, KeyValue
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


# Metrics' values and attributes (and the resources', and a log attribute's that is not a
# string) are built as dicts, which the generated message constructors and ``add()`` take
# directly: about three times cheaper than nesting message objects. Log records are written
# in the wire format instead (below).

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


# Log records are written straight in the protobuf wire format: building upb messages
# field by field cost 1.6 times as much for the common record (string attributes). Tags
# are (field number << 3) | wire type, per opentelemetry-proto's logs.proto and
# common.proto; a value that is not a string is encoded by upb. The headers of a body and
# of a string value depend only on the text's length, so those of the usual lengths are
# looked up, as are keys and varints: a record is a handful of operations, not a call per
# field (about 35 % less CPU than one helper call per field, measured with callgrind).

#: Resources encoded once per service; a store with more services starts over.
MAX_CACHED_RESOURCES = 1024
#: Metadata keys whose encoded form is kept; more distinct keys start over.
MAX_CACHED_KEYS = 4096
#: Lengths below this have their varint and headers looked up rather than computed.
TABLED = 4096
_TIMES = struct.Struct("<BQBQ").pack  # time_unix_nano (1) and observed_time_unix_nano (11)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 128:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_VARINTS = [_varint(n) for n in range(TABLED)]


def _length(n: int) -> bytes:
    return _VARINTS[n] if n < TABLED else _varint(n)


def _field(tag: bytes, payload: bytes) -> bytes:
    return tag + _length(len(payload)) + payload


def _utf8(text: str) -> bytes:
    # A lone surrogate (which JSON can carry) is not UTF-8: replaced, so the record goes out.
    return text.encode("utf-8", "replace")


def _string_header(tag: bytes, size: int) -> bytes:
    """What precedes a string of ``size`` bytes held in an AnyValue (string_value, field 1)
    that is field ``tag``: the body (5) of a LogRecord, the value (2) of a KeyValue."""
    inner = _length(size)
    return tag + _length(1 + len(inner) + size) + b"\x0a" + inner


_BODIES = [_string_header(b"\x2a", n) for n in range(TABLED)]
_VALUES = [_string_header(b"\x12", n) for n in range(TABLED)]


def _severity(level: str) -> bytes:
    """severity_number (2) and severity_text (3) of a stored level."""
    number, text = SEVERITIES.get(level, (logs_pb2.SEVERITY_NUMBER_UNSPECIFIED, level.upper()))
    return (b"\x10" + _length(number) if number else b"") + _field(b"\x1a", _utf8(text))


_SEVERITY = {level: _severity(level) for level in SEVERITIES}
_keys: dict[str, bytes] = {}


def _key(key: str) -> bytes:
    """A KeyValue's key (field 1), encoded and kept."""
    if len(_keys) >= MAX_CACHED_KEYS:
        _keys.clear()
    field = _keys[key] = _field(b"\x0a", _utf8(key))
    return field


def _log_records(records: Sequence[LogRecord], scope: bytes) -> dict[str, list[bytes]]:
    """Each service's ScopeLogs, in parts: ``scope`` then a LogRecord (2) per record, each
    with its times, severity, body (5) and attributes (6) as ``KeyValue``s."""
    by_service: dict[str, list[bytes]] = {}
    for record in records:
        parts = by_service.get(record.service)
        if parts is None:
            parts = by_service[record.service] = [scope]
        # Inlined, as every call here is paid per record: _utf8, _length, and the lookups.
        body = record.message.encode("utf-8", "replace")
        size = len(body)
        fields = [_TIMES(0x09, record.timestamp_ns, 0x59, record.timestamp_ns),
                  _SEVERITY.get(record.level) or _severity(record.level),
                  _BODIES[size] if size < TABLED else _string_header(b"\x2a", size), body]
        for key, value in record.metadata.items():
            if type(value) is str:
                key_field = _keys.get(key) or _key(key)
                text = value.encode("utf-8", "replace")
                size = len(text)
                header = _VALUES[size] if size < TABLED else _string_header(b"\x12", size)
                size += len(key_field) + len(header)
                fields += (b"\x32", _VARINTS[size] if size < TABLED else _varint(size),
                           key_field, header, text)
            else:
                pair = KeyValue(key=key, value=any_value(value)).SerializeToString()
                fields += (b"\x32", _length(len(pair)), pair)
        encoded = b"".join(fields)
        size = len(encoded)
        parts += (b"\x12", _VARINTS[size] if size < TABLED else _varint(size), encoded)
    return by_service


class Encoder:
    """Builds export requests with the resource attributes of the configuration."""

    def __init__(self, service_name: str, resource: Mapping[str, str]):
        self.service_name = service_name
        self.resource = dict(resource)
        self.scope = InstrumentationScope(name="botmon", version=__version__)
        #: ScopeLogs' field 1, the scope, encoded.
        self._scope = _field(b"\x0a", self.scope.SerializeToString())
        self._resources: dict[str, bytes] = {}

    def _resource(self, service: str) -> Resource:
        return Resource(attributes=attributes({**self.resource, "service.name": service}))

    def logs(self, records: Sequence[LogRecord]) -> bytes:
        """An ``ExportLogsServiceRequest``, serialised: one ResourceLogs per service
        (``service.name`` is the entry's service), each with one ScopeLogs."""
        by_service = _log_records(records, self._scope)
        request = []
        for service, parts in by_service.items():
            scope_logs = b"".join(parts)
            resource_logs = b"".join((self._resource_field(service), b"\x12",
                                      _length(len(scope_logs)), scope_logs))
            request += (b"\x0a", _length(len(resource_logs)), resource_logs)
        return b"".join(request)

    def _resource_field(self, service: str) -> bytes:
        """ResourceLogs' field 1, the Resource of ``service``, encoded once per service."""
        field = self._resources.get(service)
        if field is None:
            if len(self._resources) >= MAX_CACHED_RESOURCES:
                self._resources.clear()
            field = self._resources[service] = _field(
                b"\x0a", self._resource(service).SerializeToString())
        return field

    def metrics(self, families: Sequence[MetricFamily]) -> bytes:
        """An ``ExportMetricsServiceRequest``, serialised: one ResourceMetrics whose
        ``service.name`` is OTEL_SERVICE_NAME."""
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
        return request.SerializeToString()
