"""Settings of the metrics service beyond the suite's own (CONTRACT.md §2)."""

from __future__ import annotations

from dataclasses import dataclass

from botmon.runtime.config import EnvSettings, positive_float, positive_int, setting

__all__ = ["MetricsSettings"]


@dataclass(frozen=True)
class MetricsSettings(EnvSettings):
    """Sampling, ingest, retention and streaming knobs of the metrics service."""

    sample_interval: float = setting(
        "BOTMON_METRICS_SAMPLE_INTERVAL", 1.0, positive_float,
        doc="seconds between psutil samples; CPU use is measured over it")
    flush_max_events: int = setting(
        "BOTMON_METRICS_FLUSH_MAX_EVENTS", 50_000, positive_int,
        doc="events merged into one store transaction at most")
    compaction_interval: float = setting(
        "BOTMON_METRICS_COMPACTION_INTERVAL", 30.0, positive_float,
        doc="seconds between rollup compaction and retention runs")
    minute_retention_days: int = setting(
        "BOTMON_METRICS_MINUTE_RETENTION_DAYS", 7, positive_int,
        doc="days of per-minute buckets kept; older events are refused")
    hour_retention_days: int = setting(
        "BOTMON_METRICS_HOUR_RETENTION_DAYS", 30, positive_int,
        doc="days of hourly rollups kept")
    day_retention_days: int = setting(
        "BOTMON_METRICS_DAY_RETENTION_DAYS", 365, positive_int,
        doc="days of daily rollups kept")
    snapshot_ttl: float = setting(
        "BOTMON_METRICS_SNAPSHOT_TTL", 5.0, positive_float,
        doc="seconds a replica reuses its application figures for streams and rule "
            "evaluation unless an ingest (here, or on another replica via Redis) invalidates them")
    stream_queue_size: int = setting(
        "BOTMON_METRICS_STREAM_QUEUE", 16, positive_int,
        doc="update batches buffered per live subscriber before the oldest are dropped")
    postgres_pool_size: int = setting(
        "BOTMON_METRICS_PG_POOL", 4, positive_int,
        doc="PostgreSQL connections of one metrics replica")
