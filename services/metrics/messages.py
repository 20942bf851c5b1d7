"""The service's domain figures as ``botmon.metrics.v1`` messages, and flat metric values."""

from __future__ import annotations

from google.protobuf import descriptor, timestamp_pb2

from botmon.metrics.v1 import metrics_pb2, metrics_service_pb2
from services.metrics.application import ErrorFigures, Figures
from services.metrics.buckets import Bucket
from services.metrics.collector import GB, SystemSample
from services.metrics.performance import Performance

__all__ = ["application_message", "flatten", "performance_response", "system_message",
           "timestamp"]

#: Names given to the elements of repeated numeric fields when flattened.
_ELEMENT_NAMES = {"load_average": ("load_average_1m", "load_average_5m", "load_average_15m")}
_NUMERIC = {descriptor.FieldDescriptor.TYPE_DOUBLE, descriptor.FieldDescriptor.TYPE_FLOAT,
            descriptor.FieldDescriptor.TYPE_INT32, descriptor.FieldDescriptor.TYPE_INT64,
            descriptor.FieldDescriptor.TYPE_UINT32, descriptor.FieldDescriptor.TYPE_UINT64,
            descriptor.FieldDescriptor.TYPE_SINT32, descriptor.FieldDescriptor.TYPE_SINT64}


def timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def system_message(sample: SystemSample) -> metrics_pb2.SystemMetrics:
    return metrics_pb2.SystemMetrics(
        cpu=metrics_pb2.CpuMetrics(usage_percent=sample.cpu_percent, cores=sample.cores,
                                   load_average=list(sample.load_average)),
        memory=metrics_pb2.MemoryMetrics(
            total_gb=round(sample.memory_total / GB, 3),
            used_gb=round(sample.memory_used / GB, 3),
            free_gb=round(sample.memory_available / GB, 3),
            usage_percent=round(sample.memory_percent, 2)),
        disk=metrics_pb2.DiskMetrics(
            total_gb=round(sample.disk_total / GB, 3),
            used_gb=round(sample.disk_used / GB, 3),
            free_gb=round(sample.disk_free / GB, 3),
            usage_percent=round(sample.disk_percent, 2),
            free_percent=round(100.0 - sample.disk_percent, 2)),
        network=metrics_pb2.NetworkMetrics(
            bytes_sent=sample.bytes_sent, bytes_received=sample.bytes_received,
            packets_sent=sample.packets_sent, packets_received=sample.packets_received),
    )


def application_message(figures: Figures, errors: ErrorFigures) -> metrics_pb2.ApplicationMetrics:
    people = figures.people
    error_message = metrics_pb2.ErrorMetrics(total=errors.total,
                                             rate_per_hour=errors.rate_per_hour,
                                             source=errors.source)
    if errors.last_error is not None:
        error_message.last_error.CopyFrom(timestamp(errors.last_error))
    return metrics_pb2.ApplicationMetrics(
        uptime_seconds=figures.uptime_seconds,
        uptime_source=figures.uptime_source,
        requests=metrics_pb2.RequestMetrics(
            total=figures.requests_total,
            rate_per_second=round(figures.rate_per_second, 4),
            average_latency_ms=round(figures.average_latency_ms, 3),
            p99_latency_ms=round(figures.p99_latency_ms, 3),
            error_rate=round(figures.error_rate, 6)),
        sessions=metrics_pb2.SessionMetrics(
            active=people.active_sessions, total_today=people.sessions_today,
            average_duration_minutes=round(people.average_session_seconds / 60, 3)),
        conversations=metrics_pb2.ConversationMetrics(
            active=people.active_conversations, completed_today=people.completed_today,
            average_messages=round(people.average_messages, 3)),
        errors=error_message,
    )


def _share(part: int, bucket: Bucket) -> float:
    return round(part / bucket.count, 6) if bucket.count else 0.0


def performance_response(perf: Performance) -> metrics_service_pb2.GetPerformanceMetricsResponse:
    whole = perf.whole
    p50, p95, p99 = whole.sketch.quantiles((0.5, 0.95, 0.99))
    seconds = max(perf.seconds, 1.0)
    response = metrics_service_pb2.GetPerformanceMetricsResponse(
        performance=metrics_pb2.Performance(
            response_times=metrics_pb2.ResponseTimes(
                p50=round(p50, 3), p95=round(p95, 3), p99=round(p99, 3),
                mean=round(whole.sum_ms / whole.count, 3) if whole.count else 0.0,
                min=round(whole.min_ms or 0.0, 3), max=round(whole.max_ms or 0.0, 3)),
            throughput=metrics_pb2.Throughput(
                requests_per_second=round(whole.count / seconds, 4),
                messages_per_second=round(whole.messages / seconds, 4),
                bytes_per_second=round(whole.bytes / seconds, 3),
                total_requests=whole.count),
            error_rates=metrics_pb2.ErrorRates(
                client_errors=_share(whole.err_4xx, whole),
                server_errors=_share(whole.err_5xx, whole),
                timeout_errors=_share(whole.err_504, whole))),
        period=perf.period,
        resolution=perf.resolution,
    )
    for point in perf.points:
        bucket = point.bucket
        q50, q95, q99 = bucket.sketch.quantiles((0.5, 0.95, 0.99))
        response.series.add(
            timestamp=timestamp(point.start), p50=round(q50, 3), p95=round(q95, 3),
            p99=round(q99, 3), requests_per_second=round(bucket.count / point.seconds, 4),
            error_rate=_share(bucket.err_5xx, bucket))
    return response


def flatten(message, prefix: str = "", out: dict[str, float] | None = None) -> dict[str, float]:
    """Every numeric field of ``message`` (set or not) by dotted path."""
    out = {} if out is None else out
    for field in message.DESCRIPTOR.fields:
        name = f"{prefix}{field.name}"
        value = getattr(message, field.name)
        if field.type == descriptor.FieldDescriptor.TYPE_MESSAGE:
            if field.message_type.full_name.startswith("botmon."):
                flatten(value, f"{name}.", out)
        elif field.type in _NUMERIC:
            if field.is_repeated:
                for element, element_name in zip(value, _ELEMENT_NAMES.get(field.name, ()),
                                                  strict=False):
                    out[f"{prefix}{element_name}"] = float(element)
                for element_name in _ELEMENT_NAMES.get(field.name, ())[len(value):]:
                    out[f"{prefix}{element_name}"] = 0.0
            else:
                out[name] = float(value)
    return out
