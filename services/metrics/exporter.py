"""The catalogue's families as Prometheus text 0.0.4 or OpenMetrics 1.0.0."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import grpc
from google.api import httpbody_pb2
from google.protobuf import timestamp_pb2
from prometheus_client import CollectorRegistry
from prometheus_client import exposition as text_exposition
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.openmetrics import exposition as openmetrics_exposition

from botmon.alerts.v1 import alerts_service_pb2
from botmon.export.v1 import export_service_pb2
from botmon.health.v1 import health_service_pb2
from botmon.metrics.v1 import metric_family_pb2, metrics_service_pb2
from botmon.runtime.channels import Backends, call_metadata
from botmon.runtime.errors import InvalidArgument
from botmon.runtime.labels import method_label, status_label
from services.metrics.buckets import DURATION_BOUNDS
from services.metrics.catalogue import FAMILIES, Family
from services.metrics.service import Metrics

__all__ = ["CONTENT_TYPES", "Collected", "collect", "export", "structured"]

log = logging.getLogger("botmon.metrics.exporter")

CONTENT_TYPES = {
    "text": "text/plain; version=0.0.4; charset=utf-8",
    "openmetrics": "application/openmetrics-text; version=1.0.0; charset=utf-8",
}
_COMPONENTS = ("database", "cache", "storage", "llm")
_SEVERITIES = ("critical", "warning", "info")
#: Cap on each call to another service, so a slow one never stalls a scrape.
_MAX_WAIT = 2.0


class _Families:
    """The collector prometheus_client's registry asks for the families."""

    def __init__(self, families: list):
        self.families = families

    def collect(self):
        return iter(self.families)


def _make(family: Family):
    if family.type == "counter":
        return CounterMetricFamily(family.name, family.help, labels=family.labels)
    return GaugeMetricFamily(family.name, family.help, labels=family.labels)


async def _health(backends: Backends):
    try:
        return await backends.stub("health").GetDetailedHealth(
            health_service_pb2.GetDetailedHealthRequest(),
            timeout=min(backends.deadline, _MAX_WAIT), metadata=call_metadata())
    except grpc.aio.AioRpcError as exc:
        log.debug("component health omitted", extra={"code": exc.code().name})
        return None


async def _exports(backends: Backends):
    try:
        return await backends.stub("export").ListDestinations(
            export_service_pb2.ListDestinationsRequest(),
            timeout=min(backends.deadline, _MAX_WAIT), metadata=call_metadata())
    except grpc.aio.AioRpcError as exc:
        log.debug("export figures omitted", extra={"code": exc.code().name})
        return None


async def _alerts(backends: Backends):
    try:
        return await backends.stub("alerts").ListAlerts(
            alerts_service_pb2.ListAlertsRequest(state="firing"),
            timeout=min(backends.deadline, _MAX_WAIT), metadata=call_metadata())
    except grpc.aio.AioRpcError as exc:
        log.debug("active alerts omitted", extra={"code": exc.code().name})
        return None


@dataclass(frozen=True)
class Collected:
    """The catalogue's families (prometheus_client objects, in catalogue order), read at ``now``."""

    families: list
    now: float
    #: Unix seconds since when the store's counters and histogram accumulate.
    counters_since: float
    #: Unix seconds of the host's boot, since when its counters count; None before a sample.
    boot_time: float | None


async def collect(metrics: Metrics) -> Collected:
    """Every family of the catalogue, with what can be read now."""
    now = time.time()
    store = metrics.store
    counters, meta, people, errors, uptime, health, alerts, exports = await asyncio.gather(
        store.counters(), store.meta(),
        store.people(now, now - now % 86400, metrics.settings.session_idle_timeout),
        metrics.errors.figures(now), metrics.uptime.figure(now), _health(metrics.backends),
        _alerts(metrics.backends), _exports(metrics.backends))
    sample = metrics.collector.latest
    out = {f.name: _make(f) for f in FAMILIES if f.type != "histogram"}

    def add(name: str, value: float, labels: tuple[str, ...] = ()) -> None:
        out[name].add_metric(list(labels), value)

    def total(name: str) -> float:
        return counters.get((name, ""), 0.0)

    requests = 0.0
    classes = {"client": 0.0, "server": 0.0, "timeout": 0.0}
    # Bounded labels (botmon.runtime.labels); rows stored before the bound merge into them.
    by_labels: dict[tuple[str, str], float] = {}
    for (name, labels), value in sorted(counters.items()):
        if name != "requests":
            continue
        method, status = labels.rsplit("|", 1)
        code = int(status)
        series = (method_label(method), status_label(code))
        by_labels[series] = by_labels.get(series, 0.0) + value
        requests += value
        if code >= 500:
            classes["server"] += value
            if code == 504:
                classes["timeout"] += value
        elif code >= 400:
            classes["client"] += value
    for series, value in sorted(by_labels.items()):
        add("botserver_requests_total", value, series)
    for name, value in classes.items():
        add("botserver_request_errors_total", value, (name,))
    cumulative, buckets = 0.0, []
    for bound in [*(repr(b) for b in DURATION_BOUNDS), "+Inf"]:
        cumulative += counters.get(("duration_slot", bound), 0.0)
        buckets.append((bound, cumulative))
    histogram = HistogramMetricFamily(
        "botserver_request_duration_seconds",
        next(f.help for f in FAMILIES if f.name == "botserver_request_duration_seconds"),
        buckets=buckets, sum_value=total("duration_sum_ms") / 1000)
    add("botserver_response_bytes_total", total("bytes"))
    add("botserver_sessions_active", people.active_sessions)
    add("botserver_sessions_started_total", total("sessions_started"))
    add("botserver_sessions_ended_total", total("sessions_ended"))
    add("botserver_conversations_active", people.active_conversations)
    add("botserver_conversations_started_total", total("conversations_started"))
    add("botserver_conversations_completed_total", total("conversations_completed"))
    add("botserver_conversation_messages_total", total("conversation_messages"))
    add("botserver_errors_last_hour", errors.rate_per_hour, (errors.source,))
    seconds, source = uptime
    add("botserver_uptime_seconds", seconds, (source,))
    if sample is not None:
        add("botserver_cpu_usage_percent", sample.cpu_percent)
        add("botserver_cpu_cores", sample.cores)
        for period, value in zip(("1m", "5m", "15m"), sample.load_average, strict=True):
            add("botserver_load_average", value, (period,))
        add("botserver_memory_total_bytes", sample.memory_total)
        add("botserver_memory_used_bytes", sample.memory_used)
        add("botserver_memory_available_bytes", sample.memory_available)
        add("botserver_memory_usage_percent", sample.memory_percent)
        path = (sample.disk_path,)
        add("botserver_disk_total_bytes", sample.disk_total, path)
        add("botserver_disk_used_bytes", sample.disk_used, path)
        add("botserver_disk_free_bytes", sample.disk_free, path)
        add("botserver_disk_usage_percent", sample.disk_percent, path)
        add("botserver_disk_free_percent", 100.0 - sample.disk_percent, path)
        add("botserver_network_sent_bytes_total", sample.bytes_sent)
        add("botserver_network_received_bytes_total", sample.bytes_received)
        add("botserver_network_sent_packets_total", sample.packets_sent)
        add("botserver_network_received_packets_total", sample.packets_received)
    if health is not None:
        for component in _COMPONENTS:
            probed = getattr(health.components, component)
            if probed.status in ("", "not_configured"):
                continue
            add("botserver_component_up", 1.0 if probed.status != "unhealthy" else 0.0,
                (component,))
            add("botserver_component_probe_duration_seconds", probed.latency_ms / 1000,
                (component,))
    if alerts is not None:
        firing = dict.fromkeys(_SEVERITIES, 0)
        for alert in alerts.alerts:
            if alert.state == "firing":
                severity = alert.severity or "warning"
                firing[severity] = firing.get(severity, 0) + 1
        for severity, count in sorted(firing.items()):
            add("botserver_alerts_active", count, (severity,))
    for destination in exports.destinations if exports is not None else ():
        name = (destination.name,)
        add("botmon_export_up", 1.0 if destination.status == "running" else 0.0, name)
        add("botmon_export_sent_total", destination.sent, name)
        add("botmon_export_failed_total", destination.failed, name)
        add("botmon_export_skipped_total", destination.skipped, name)
        add("botmon_export_backlog", destination.backlog, name)
        add("botmon_export_lag_seconds", destination.lag_seconds, name)
        if destination.HasField("last_success_time"):
            add("botmon_export_last_success_timestamp_seconds",
                destination.last_success_time.ToNanoseconds() / 1e9, name)
    ordered = [histogram if f.type == "histogram" else out[f.name] for f in FAMILIES]
    return Collected(ordered, now, meta["counters_since"],
                     sample.boot_time if sample is not None else None)


async def export(metrics: Metrics, fmt: str) -> metrics_service_pb2.GetPrometheusMetricsResponse:
    """The catalogue as Prometheus text 0.0.4 or OpenMetrics 1.0.0."""
    fmt = fmt or "text"
    if fmt not in CONTENT_TYPES:
        raise InvalidArgument(f"format must be text or openmetrics; got {fmt!r}", field="format")
    collected = await collect(metrics)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(collected.families))
    generate = (openmetrics_exposition if fmt == "openmetrics" else text_exposition).generate_latest
    return metrics_service_pb2.GetPrometheusMetricsResponse(
        body=httpbody_pb2.HttpBody(content_type=CONTENT_TYPES[fmt], data=generate(registry)))


def _stamp(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def _unit(name: str) -> str:
    for unit in ("seconds", "bytes", "percent"):
        if f"_{unit}" in name:
            return unit
    return ""


def _structured_family(spec: Family, family, collected: Collected
                       ) -> metric_family_pb2.MetricFamily:
    out = metric_family_pb2.MetricFamily(name=spec.name, type=spec.type, help=spec.help,
                                         unit=_unit(spec.name))
    if spec.type != "gauge":
        # Fixed while the series counts on: a start that moved would tell a reader (OTLP's
        # cumulative sums) that the series restarted from zero.
        since = collected.boot_time if spec.source == "host" else collected.counters_since
        if since is not None:
            out.start_time.CopyFrom(_stamp(since))
    if spec.type != "histogram":
        for sample in family.samples:
            out.samples.add(labels=sample.labels, value=sample.value)
        return out
    by_labels: dict[tuple, metric_family_pb2.MetricSample] = {}
    for sample in family.samples:
        labels = {k: v for k, v in sample.labels.items() if k != "le"}
        key = tuple(sorted(labels.items()))
        if key not in by_labels:
            by_labels[key] = out.samples.add(labels=labels)
        target = by_labels[key]
        if sample.name.endswith("_bucket"):
            target.buckets.add(upper_bound=float(sample.labels["le"]),
                               cumulative_count=sample.value)
        elif sample.name.endswith("_sum"):
            target.sum = sample.value
        elif sample.name.endswith("_count"):
            target.count = sample.value
    return out


async def structured(metrics: Metrics) -> metrics_service_pb2.ListMetricFamiliesResponse:
    """The catalogue as structured families, for exporters (the same figures as :func:`export`)."""
    collected = await collect(metrics)
    return metrics_service_pb2.ListMetricFamiliesResponse(
        families=[_structured_family(spec, family, collected)
                  for spec, family in zip(FAMILIES, collected.families, strict=True)],
        sample_time=_stamp(collected.now))
