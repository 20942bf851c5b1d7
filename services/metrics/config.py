"""Settings of the metrics service beyond the suite's own (CONTRACT.md §2)."""

from __future__ import annotations

from dataclasses import dataclass

from botmon.runtime.config import ConfigError, EnvSettings, positive_float, positive_int, setting

__all__ = ["MetricsSettings"]


def names(raw: str) -> tuple[str, ...]:
    """Parse ``web_server,worker`` into service names."""
    found = tuple(dict.fromkeys(p.strip() for p in raw.split(",") if p.strip()))
    if not found:
        raise ValueError(f"expected comma-separated service names, got {raw!r}")
    return found


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
        doc="seconds the application figures may age when no commit refreshes them sooner; "
            "a request finding older ones waits for a refresh (a stream never does)")
    figures_min_refresh: float = setting(
        "BOTMON_METRICS_MIN_REFRESH", 1.0, positive_float,
        doc="least seconds between two refreshes of the application figures from the store: "
            "commits (here, or on another replica via Redis) meanwhile are read by the next one")
    error_refresh: float = setting(
        "BOTMON_METRICS_ERROR_REFRESH", 5.0, positive_float,
        doc="seconds between two reads of the error figures from the logs service, "
            "in the background")
    stream_queue_size: int = setting(
        "BOTMON_METRICS_STREAM_QUEUE", 16, positive_int,
        doc="ticks buffered per live subscriber before the oldest are dropped "
            "(each counts its updates in dropped)")
    fanout_channel: str | None = setting(
        "BOTMON_METRICS_FANOUT_CHANNEL", None, str,
        doc="Redis pub/sub channel announcing commits to the other replicas; default "
            "`botmon:N:metrics:committed`, N being the database number of BOTMON_REDIS_URL")
    platform_services: tuple[str, ...] = setting(
        "BOTMON_PLATFORM_SERVICES", (), names,
        doc="registered services whose instances are the platform for uptime_seconds, comma "
            "separated; default every registered service that is not one of botmon's own")
    uptime_refresh: float = setting(
        "BOTMON_METRICS_UPTIME_REFRESH", 2.0, positive_float,
        doc="seconds between two reads of the registrations (for uptime_seconds) from the "
            "health service, in the background")
    postgres_pool_size: int = setting(
        "BOTMON_METRICS_PG_POOL", 4, positive_int,
        doc="PostgreSQL connections of one metrics replica")

    def _derived(self) -> MetricsSettings:
        if self.figures_min_refresh > self.snapshot_ttl:
            raise ConfigError(f"BOTMON_METRICS_MIN_REFRESH ({self.figures_min_refresh:g}) must not "
                              f"exceed BOTMON_METRICS_SNAPSHOT_TTL ({self.snapshot_ttl:g})")
        return self
