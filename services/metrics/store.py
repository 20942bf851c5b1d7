"""The metrics store: one interface, SQLite and PostgreSQL implementations.

Tables (prefix ``metrics_``):

- ``buckets(level, start, …)``: request figures and a latency sketch per bucket,
  ``level`` being the width in seconds (1, 60, 3600, 86400). Ingest upserts the
  second and minute rows; every upsert merges in SQL (counters add, min/max,
  sketch bins add), so any number of replicas writing one PostgreSQL store
  give the same rows as one replica would.
- ``rollup_queue(start, …)``: the minute deltas not yet rolled up, upserted in
  the same transaction as the minute rows. Background compaction moves them
  (delete … returning, skipping rows another replica holds) into the hour and
  day rows. Reads at hour/day level merge the rollups with the queue in one
  statement, so answers are exact before, during and after compaction.
- ``counters(name, labels, value)``: monotonic totals for the Prometheus export.
- ``meta(key, value)``: first event time, newest server error.
- ``sessions`` / ``conversations``: one row each with start, last event, end.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

from botmon.runtime.config import Settings
from botmon.runtime.store import StoreLocation
from services.metrics.buckets import Batch, Bucket
from services.metrics.config import MetricsSettings

__all__ = ["MetricsStore", "People", "Retention", "open_store"]

#: Seconds of per-second buckets kept for the live figures.
SECOND_RETENTION = 600
#: Seconds a finished session or conversation row is kept (today's figures need it).
PEOPLE_RETENTION = 2 * 86400


@dataclass(frozen=True)
class Retention:
    """Seconds each bucket level is kept, by width in seconds."""

    by_level: dict[int, int]

    @classmethod
    def from_settings(cls, ms: MetricsSettings) -> Retention:
        return cls({1: SECOND_RETENTION, 60: ms.minute_retention_days * 86400,
                    3600: ms.hour_retention_days * 86400, 86400: ms.day_retention_days * 86400})


@dataclass(frozen=True)
class People:
    """Session and conversation figures at one moment."""

    active_sessions: int
    sessions_today: int
    average_session_seconds: float
    active_conversations: int
    completed_today: int
    average_messages: float


class MetricsStore(abc.ABC):
    """Where buckets, counters and sessions live; every method is one transaction."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and create the tables if needed."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections."""

    @abc.abstractmethod
    async def write(self, batch: Batch) -> None:
        """Merge ``batch`` into the store atomically."""

    @abc.abstractmethod
    async def buckets(self, level: int, start: int, end: int) -> dict[int, Bucket]:
        """Buckets of width ``level`` whose start is in ``[start, end)``, by start."""

    @abc.abstractmethod
    async def counters(self) -> dict[tuple[str, str], float]:
        """Every counter by (name, labels)."""

    @abc.abstractmethod
    async def meta(self) -> dict[str, float]:
        """``last_server_error`` when known, and ``counters_since``: when the store began
        counting (Unix seconds, set when its schema was created)."""

    @abc.abstractmethod
    async def people(self, now: float, midnight: float, idle: float) -> People:
        """Sessions and conversations, an idle one counting as ended at its last event."""

    @abc.abstractmethod
    async def compact(self, now: float, retention: Retention) -> int:
        """Roll queued minute deltas into hours and days, drop expired rows; rows rolled."""


def open_store(settings: Settings, ms: MetricsSettings) -> MetricsStore:
    """The store ``settings.store_url`` names (not yet opened)."""
    location = StoreLocation.parse(settings.store_url)
    if location.kind == "sqlite":
        from services.metrics.sqlite_store import SqliteMetricsStore
        return SqliteMetricsStore(location.path)
    from services.metrics.postgres_store import PostgresMetricsStore
    return PostgresMetricsStore(location.dsn, pool_size=ms.postgres_pool_size)


#: The columns of :func:`bucket_columns`, in SQL.
BUCKET_COLUMNS = "count, sum_ms, min_ms, max_ms, bytes, err_4xx, err_5xx, err_504, messages"


def bucket_columns(bucket: Bucket) -> tuple:
    """The bucket's columns after (level, start), sketch excluded."""
    return (bucket.count, bucket.sum_ms, bucket.min_ms, bucket.max_ms, bucket.bytes,
            bucket.err_4xx, bucket.err_5xx, bucket.err_504, bucket.messages)


def bucket_from_row(row, sketch_flat) -> Bucket:
    """A Bucket from a row's columns in :func:`bucket_columns` order and its flat sketch."""
    bucket = Bucket()
    (bucket.count, bucket.sum_ms, bucket.min_ms, bucket.max_ms, bucket.bytes, bucket.err_4xx,
     bucket.err_5xx, bucket.err_504, bucket.messages) = row
    bucket.sketch.merge_flat(sketch_flat)
    return bucket

