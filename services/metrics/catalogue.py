"""Every exported metric family and every dashboard panel, in one place.

The exporter emits exactly :data:`FAMILIES`; the Grafana dashboard is built
from :data:`ROWS`, whose queries may only name those families (a test checks
it), so the two cannot drift apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["FAMILIES", "ROWS", "Family", "Panel", "Row", "Target", "family_names_in"]


@dataclass(frozen=True)
class Family:
    """A metric family: name as exposed in text format 0.0.4, type, help, label names."""

    name: str
    type: str
    help: str
    labels: tuple[str, ...] = ()
    source: str = "store"


@dataclass(frozen=True)
class Target:
    """One PromQL query of a panel and its legend."""

    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    """A dashboard panel: ``kind`` is a Grafana panel type, ``unit`` a Grafana unit id."""

    title: str
    targets: tuple[Target, ...]
    unit: str = "short"
    kind: str = "timeseries"
    description: str = ""


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


def _f(name: str, kind: str, help_text: str, labels: tuple[str, ...] = (),
       source: str = "store") -> Family:
    return Family(name, kind, help_text, labels, source)


FAMILIES: tuple[Family, ...] = (
    # The platform, from ingested events (shared store: the same on every replica).
    _f("botserver_requests_total", "counter",
       "Requests reported by the platform, by HTTP method and status.", ("method", "status")),
    _f("botserver_request_duration_seconds", "histogram",
       "Duration of the requests reported by the platform."),
    _f("botserver_response_bytes_total", "counter",
       "Response bytes of the requests reported by the platform."),
    _f("botserver_request_errors_total", "counter",
       "Reported requests that failed, by class: client (4xx), server (5xx), timeout (504).",
       ("class",)),
    _f("botserver_sessions_active", "gauge",
       "Sessions started and neither ended nor idle past the session timeout."),
    _f("botserver_sessions_started_total", "counter", "Sessions started."),
    _f("botserver_sessions_ended_total", "counter", "Sessions ended explicitly."),
    _f("botserver_conversations_active", "gauge", "Conversations started and not completed."),
    _f("botserver_conversations_started_total", "counter", "Conversations started."),
    _f("botserver_conversations_completed_total", "counter", "Conversations completed."),
    _f("botserver_conversation_messages_total", "counter",
       "Messages of the completed conversations."),
    _f("botserver_errors_last_hour", "gauge",
       "Errors in the last hour: error-level logs (source=logs) or, without the logs "
       "service, requests with status >= 500 (source=requests).", ("source",)),
    _f("botserver_uptime_seconds", "gauge",
       "Seconds since the start of the longest-running live platform instance "
       "(source=platform), or of botmon itself when none is registered (source=botmon).",
       ("source",)),
    # The host, from the latest psutil sample of this replica.
    _f("botserver_cpu_usage_percent", "gauge", "CPU use over the last sample period, 0-100.",
       source="host"),
    _f("botserver_cpu_cores", "gauge", "Logical CPU cores.", source="host"),
    _f("botserver_load_average", "gauge", "System load average over the period.",
       ("period",), source="host"),
    _f("botserver_memory_total_bytes", "gauge", "Physical memory.", source="host"),
    _f("botserver_memory_used_bytes", "gauge", "Memory in use (total - available).",
       source="host"),
    _f("botserver_memory_available_bytes", "gauge", "Memory available to new processes.",
       source="host"),
    _f("botserver_memory_usage_percent", "gauge", "Memory in use, 0-100.", source="host"),
    _f("botserver_disk_total_bytes", "gauge", "Size of the storage path's filesystem.",
       ("path",), source="host"),
    _f("botserver_disk_used_bytes", "gauge", "Space in use on the storage path's filesystem.",
       ("path",), source="host"),
    _f("botserver_disk_free_bytes", "gauge",
       "Space free for unprivileged users on the storage path's filesystem.", ("path",),
       source="host"),
    _f("botserver_disk_usage_percent", "gauge", "Disk space in use, 0-100, as df reports it.",
       ("path",), source="host"),
    _f("botserver_disk_free_percent", "gauge", "Disk space free, 0-100 (100 - usage).",
       ("path",), source="host"),
    _f("botserver_network_sent_bytes_total", "counter", "Bytes sent by the host since boot.",
       source="host"),
    _f("botserver_network_received_bytes_total", "counter",
       "Bytes received by the host since boot.", source="host"),
    _f("botserver_network_sent_packets_total", "counter", "Packets sent by the host since boot.",
       source="host"),
    _f("botserver_network_received_packets_total", "counter",
       "Packets received by the host since boot.", source="host"),
    # The suite's other services; omitted while they cannot be reached.
    _f("botserver_component_up", "gauge",
       "1 when the probed component is healthy or degraded, 0 when unhealthy.",
       ("component",), source="health"),
    _f("botserver_component_probe_duration_seconds", "gauge",
       "Round-trip time of the component's last health probe.", ("component",),
       source="health"),
    _f("botserver_alerts_active", "gauge", "Firing alerts by severity.", ("severity",),
       source="alerts"),
    # The export service's destinations (CONTRACT.md §10); omitted while it cannot be reached.
    _f("botmon_export_up", "gauge",
       "1 while sends to the destination succeed, 0 while they fail.", ("destination",),
       source="export"),
    _f("botmon_export_sent_total", "counter",
       "Log entries the destination acknowledged.", ("destination",), source="export"),
    _f("botmon_export_failed_total", "counter",
       "Log entries the destination refused for good.", ("destination",), source="export"),
    _f("botmon_export_skipped_total", "counter",
       "Log entries skipped because they were older than BOTMON_EXPORT_MAX_AGE.",
       ("destination",), source="export"),
    _f("botmon_export_backlog", "gauge",
       "Log entries stored after the destination's position.", ("destination",),
       source="export"),
    _f("botmon_export_lag_seconds", "gauge",
       "Age of the newest entry sent while a backlog remains; 0 when caught up.",
       ("destination",), source="export"),
    _f("botmon_export_last_success_timestamp_seconds", "gauge",
       "Unix time of the destination's last acknowledged send.", ("destination",),
       source="export"),
)

_RATE = "[5m]"

ROWS: tuple[Row, ...] = (
    Row("Traffic", (
        Panel("Request Rate", (
            Target(f"sum by (method) (rate(botserver_requests_total{_RATE}))", "{{method}}"),),
            unit="reqps"),
        Panel("Latency Percentiles", tuple(
            Target(f"histogram_quantile({q}, sum by (le) "
                   f"(rate(botserver_request_duration_seconds_bucket{_RATE})))", f"p{p}")
            for q, p in ((0.5, 50), (0.95, 95), (0.99, 99))), unit="s"),
        Panel("Error Rate", (
            Target(f"sum by (class) (rate(botserver_request_errors_total{_RATE})) / "
                   f"scalar(sum(rate(botserver_requests_total{_RATE})) > 0)", "{{class}}"),),
            unit="percentunit",
            description="Share of reported requests that failed, by class."),
        Panel("Errors (last hour)", (Target("botserver_errors_last_hour", "{{source}}"),),
              kind="stat"),
        Panel("Response Throughput", (
            Target(f"rate(botserver_response_bytes_total{_RATE})", "bytes/s"),), unit="Bps"),
    )),
    Row("Sessions and Conversations", (
        Panel("Active Sessions", (Target("botserver_sessions_active", "active"),
                                  Target(f"rate(botserver_sessions_started_total{_RATE}) * 60",
                                         "started/min"))),
        Panel("Active Conversations", (
            Target("botserver_conversations_active", "active"),
            Target(f"rate(botserver_conversations_completed_total{_RATE}) * 60",
                   "completed/min"))),
        Panel("Messages per Conversation", (
            Target(f"rate(botserver_conversation_messages_total{_RATE}) / "
                   f"scalar(rate(botserver_conversations_completed_total{_RATE}) > 0)",
                   "messages"),)),
        Panel("Uptime", (Target("botserver_uptime_seconds", "uptime"),), unit="s", kind="stat"),
    )),
    Row("System", (
        Panel("CPU", (Target("botserver_cpu_usage_percent", "usage"),), unit="percent"),
        Panel("Load Average", (Target("botserver_load_average", "{{period}}"),)),
        Panel("Memory", (Target("botserver_memory_usage_percent", "usage"),), unit="percent"),
        Panel("Disk", (Target("botserver_disk_usage_percent", "{{path}}"),), unit="percent"),
        Panel("Network", (
            Target(f"rate(botserver_network_received_bytes_total{_RATE})", "received"),
            Target(f"rate(botserver_network_sent_bytes_total{_RATE})", "sent")), unit="Bps"),
    )),
    Row("Exports", (
        Panel("Exported Entries", (
            Target(f"rate(botmon_export_sent_total{_RATE})", "{{destination}}"),), unit="ops"),
        Panel("Export Backlog", (Target("botmon_export_backlog", "{{destination}}"),)),
        Panel("Export Lag", (Target("botmon_export_lag_seconds", "{{destination}}"),),
              unit="s"),
        Panel("Export Failures and Skips", (
            Target(f"rate(botmon_export_failed_total{_RATE})", "failed {{destination}}"),
            Target(f"rate(botmon_export_skipped_total{_RATE})", "skipped {{destination}}"))),
        Panel("Destinations Up", (Target("botmon_export_up", "{{destination}}"),), kind="stat"),
    )),
    Row("Health and Alerts", (
        Panel("Component Health", (Target("botserver_component_up", "{{component}}"),),
              kind="stat"),
        Panel("Probe Latency", (
            Target("botserver_component_probe_duration_seconds", "{{component}}"),), unit="s"),
        Panel("Active Alerts", (Target("botserver_alerts_active", "{{severity}}"),),
              kind="stat"),
    )),
)

_NAME = re.compile(r"\b((?:botserver|botmon_export)_[a-z0-9_]+)")
_SUFFIXES = ("_bucket", "_sum", "_count")


def family_names_in(expr: str) -> set[str]:
    """Family names a PromQL expression reads (histogram sample suffixes removed)."""
    names = set()
    for name in _NAME.findall(expr):
        for suffix in _SUFFIXES:
            if name.endswith(suffix) and name.removesuffix(suffix) in _BY_NAME:
                name = name.removesuffix(suffix)
        names.add(name)
    return names


_BY_NAME = {f.name: f for f in FAMILIES}
