"""The metrics store in PostgreSQL, shared by any number of metrics replicas.

Every write is an ``INSERT … ON CONFLICT DO UPDATE`` that merges in SQL
(``metrics_sketch_merge`` adds two sketches' bins), so concurrent replicas
never lose each other's figures; rows are locked in sorted order to avoid
deadlocks between them.
"""

from __future__ import annotations

import asyncpg

from botmon.runtime.store import close_pool
from services.metrics.buckets import Batch, Bucket, rollup
from services.metrics.store import (
    BUCKET_COLUMNS,
    PEOPLE_RETENTION,
    MetricsStore,
    People,
    Retention,
    bucket_columns,
    bucket_from_row,
)

__all__ = ["PostgresMetricsStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS metrics_buckets (
    level INTEGER NOT NULL, start BIGINT NOT NULL,
    count BIGINT NOT NULL, sum_ms DOUBLE PRECISION NOT NULL,
    min_ms DOUBLE PRECISION, max_ms DOUBLE PRECISION,
    bytes BIGINT NOT NULL, err_4xx BIGINT NOT NULL, err_5xx BIGINT NOT NULL,
    err_504 BIGINT NOT NULL, messages BIGINT NOT NULL, sketch BIGINT[] NOT NULL,
    PRIMARY KEY (level, start));
CREATE TABLE IF NOT EXISTS metrics_rollup_queue (
    start BIGINT PRIMARY KEY,
    count BIGINT NOT NULL, sum_ms DOUBLE PRECISION NOT NULL,
    min_ms DOUBLE PRECISION, max_ms DOUBLE PRECISION,
    bytes BIGINT NOT NULL, err_4xx BIGINT NOT NULL, err_5xx BIGINT NOT NULL,
    err_504 BIGINT NOT NULL, messages BIGINT NOT NULL, sketch BIGINT[] NOT NULL);
CREATE TABLE IF NOT EXISTS metrics_counters (
    name TEXT NOT NULL, labels TEXT NOT NULL, value DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (name, labels));
CREATE TABLE IF NOT EXISTS metrics_meta (key TEXT PRIMARY KEY, value DOUBLE PRECISION NOT NULL);
INSERT INTO metrics_meta VALUES ('counters_since', extract(epoch FROM clock_timestamp()))
    ON CONFLICT (key) DO NOTHING;
CREATE TABLE IF NOT EXISTS metrics_sessions (
    session_id TEXT PRIMARY KEY, started_at DOUBLE PRECISION,
    last_seen DOUBLE PRECISION NOT NULL, ended_at DOUBLE PRECISION);
CREATE INDEX IF NOT EXISTS metrics_sessions_last_seen ON metrics_sessions (last_seen);
CREATE TABLE IF NOT EXISTS metrics_conversations (
    conversation_id TEXT PRIMARY KEY, started_at DOUBLE PRECISION,
    last_seen DOUBLE PRECISION NOT NULL, completed_at DOUBLE PRECISION, messages INTEGER);
CREATE INDEX IF NOT EXISTS metrics_conversations_last_seen ON metrics_conversations (last_seen);

-- Sketch layout: [zero_count, first_bin, count(first_bin), count(first_bin + 1), ...].
CREATE OR REPLACE FUNCTION metrics_sketch_merge(a BIGINT[], b BIGINT[]) RETURNS BIGINT[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    na INTEGER := coalesce(cardinality(a), 0) - 2;
    nb INTEGER := coalesce(cardinality(b), 0) - 2;
    lo BIGINT;
    hi BIGINT;
    out BIGINT[];
BEGIN
    IF na < 0 THEN RETURN b; END IF;
    IF nb < 0 THEN RETURN a; END IF;
    IF na = 0 THEN out := b; out[1] := a[1] + b[1]; RETURN out; END IF;
    IF nb = 0 THEN out := a; out[1] := a[1] + b[1]; RETURN out; END IF;
    lo := least(a[2], b[2]);
    hi := greatest(a[2] + na, b[2] + nb);
    out := array_fill(0::BIGINT, ARRAY[(hi - lo + 2)::INTEGER]);
    out[1] := a[1] + b[1];
    out[2] := lo;
    FOR i IN 1..na LOOP
        out[a[2] - lo + i + 2] := out[a[2] - lo + i + 2] + a[i + 2];
    END LOOP;
    FOR i IN 1..nb LOOP
        out[b[2] - lo + i + 2] := out[b[2] - lo + i + 2] + b[i + 2];
    END LOOP;
    RETURN out;
END $$;
"""


def _merge(table: str) -> str:
    return f"""
    count = {table}.count + excluded.count, sum_ms = {table}.sum_ms + excluded.sum_ms,
    min_ms = least({table}.min_ms, excluded.min_ms),
    max_ms = greatest({table}.max_ms, excluded.max_ms),
    bytes = {table}.bytes + excluded.bytes, err_4xx = {table}.err_4xx + excluded.err_4xx,
    err_5xx = {table}.err_5xx + excluded.err_5xx, err_504 = {table}.err_504 + excluded.err_504,
    messages = {table}.messages + excluded.messages,
    sketch = metrics_sketch_merge({table}.sketch, excluded.sketch)"""


_UPSERT_BUCKET = f"""
INSERT INTO metrics_buckets (level, start, {BUCKET_COLUMNS}, sketch)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (level, start) DO UPDATE SET {_merge("metrics_buckets")}"""

_UPSERT_QUEUE = f"""
INSERT INTO metrics_rollup_queue (start, {BUCKET_COLUMNS}, sketch)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (start) DO UPDATE SET {_merge("metrics_rollup_queue")}"""

_UPSERT_COUNTER = """
INSERT INTO metrics_counters (name, labels, value) VALUES ($1, $2, $3)
ON CONFLICT (name, labels) DO UPDATE SET value = metrics_counters.value + excluded.value"""

_UPSERT_META = {
    "last_server_error": "INSERT INTO metrics_meta VALUES ('last_server_error', $1) "
                         "ON CONFLICT (key) DO UPDATE "
                         "SET value = greatest(metrics_meta.value, excluded.value)",
}

_UPSERT_SESSION = """
INSERT INTO metrics_sessions AS s (session_id, started_at, last_seen, ended_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT (session_id) DO UPDATE SET
    started_at = least(s.started_at, excluded.started_at),
    last_seen = greatest(s.last_seen, excluded.last_seen),
    ended_at = greatest(s.ended_at, excluded.ended_at)"""

_UPSERT_CONVERSATION = """
INSERT INTO metrics_conversations AS c (conversation_id, started_at, last_seen, completed_at,
                                        messages)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (conversation_id) DO UPDATE SET
    started_at = least(c.started_at, excluded.started_at),
    last_seen = greatest(c.last_seen, excluded.last_seen),
    messages = CASE WHEN excluded.completed_at IS NOT NULL
                     AND (c.completed_at IS NULL OR excluded.completed_at >= c.completed_at)
                    THEN excluded.messages ELSE c.messages END,
    completed_at = greatest(c.completed_at, excluded.completed_at)"""

_PEOPLE = """
SELECT
  (SELECT count(*) FROM metrics_sessions
    WHERE ended_at IS NULL AND started_at IS NOT NULL AND last_seen >= $1),
  (SELECT count(*) FROM metrics_sessions WHERE started_at >= $2),
  (SELECT avg(e - started_at) FROM (
     SELECT started_at, coalesce(ended_at, CASE WHEN last_seen < $1 THEN last_seen END) AS e
       FROM metrics_sessions WHERE started_at IS NOT NULL) s WHERE e >= $2),
  (SELECT count(*) FROM metrics_conversations
    WHERE completed_at IS NULL AND started_at IS NOT NULL AND last_seen >= $1),
  (SELECT count(*) FROM metrics_conversations WHERE completed_at >= $2),
  (SELECT avg(messages)::DOUBLE PRECISION FROM metrics_conversations WHERE completed_at >= $2)"""

_TAKE_QUEUE = f"""
DELETE FROM metrics_rollup_queue WHERE start IN (
    SELECT start FROM metrics_rollup_queue ORDER BY start FOR UPDATE SKIP LOCKED)
RETURNING start, {BUCKET_COLUMNS}, sketch"""


def _expire(table: str, condition: str) -> str:
    """A retention DELETE that skips rows a writer holds, so compaction never waits on
    (or deadlocks with) ingest; what it skips goes in the next round."""
    return (f"DELETE FROM {table} WHERE ctid IN "
            f"(SELECT ctid FROM {table} WHERE {condition} FOR UPDATE SKIP LOCKED)")


def _bucket_rows(prefix: tuple, buckets: dict[int, Bucket]) -> list[tuple]:
    return [(*prefix, start, *bucket_columns(b), b.sketch.to_flat())
            for start, b in sorted(buckets.items())]


class PostgresMetricsStore(MetricsStore):
    """Tables in a PostgreSQL database through an asyncpg pool."""

    def __init__(self, dsn: str, *, pool_size: int = 4, command_timeout: float = 30.0):
        self.dsn = dsn
        self.pool_size = pool_size
        self.command_timeout = command_timeout
        self.pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        self.pool = await asyncpg.create_pool(
            self.dsn, min_size=1, max_size=self.pool_size, timeout=10,
            command_timeout=self.command_timeout)
        async with self.pool.acquire() as conn, conn.transaction():
            # Replicas starting together would race on CREATE … IF NOT EXISTS.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('botmon_metrics_schema'))")
            await conn.execute(_SCHEMA)

    async def close(self) -> None:
        if self.pool is not None:
            await close_pool(self.pool)
            self.pool = None

    async def write(self, batch: Batch) -> None:
        minutes = rollup(batch.seconds, 60)
        bucket_rows = _bucket_rows((1,), batch.seconds) + _bucket_rows((60,), minutes)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.executemany(_UPSERT_BUCKET, bucket_rows)
            await conn.executemany(_UPSERT_QUEUE, _bucket_rows((), minutes))
            await conn.executemany(_UPSERT_COUNTER, [
                (n, lab, float(v)) for (n, lab), v in sorted(batch.counters.items())])
            if batch.last_server_error is not None:
                await conn.execute(_UPSERT_META["last_server_error"], batch.last_server_error)
            if batch.sessions:
                await conn.executemany(_UPSERT_SESSION, [
                    (sid, d.started, d.last_seen, d.ended)
                    for sid, d in sorted(batch.sessions.items())])
            if batch.conversations:
                await conn.executemany(_UPSERT_CONVERSATION, [
                    (cid, d.started, d.last_seen, d.completed, d.messages)
                    for cid, d in sorted(batch.conversations.items())])

    async def buckets(self, level: int, start: int, end: int) -> dict[int, Bucket]:
        sql = f"SELECT start, {BUCKET_COLUMNS}, sketch FROM metrics_buckets " \
              "WHERE level = $1 AND start >= $2 AND start < $3"
        if level > 60:
            # One statement: one snapshot, so a concurrent compaction is seen wholly or not at all.
            sql += f" UNION ALL SELECT start, {BUCKET_COLUMNS}, sketch FROM metrics_rollup_queue " \
                   "WHERE start >= $2 AND start < $3"
        out: dict[int, Bucket] = {}
        for row in await self.pool.fetch(sql, level, start, end):
            key = row[0] - row[0] % level
            bucket = bucket_from_row(tuple(row[1:10]), row[10])
            if key in out:
                out[key].merge(bucket)
            else:
                out[key] = bucket
        return out

    async def counters(self) -> dict[tuple[str, str], float]:
        rows = await self.pool.fetch("SELECT name, labels, value FROM metrics_counters")
        return {(r[0], r[1]): r[2] for r in rows}

    async def meta(self) -> dict[str, float]:
        rows = await self.pool.fetch("SELECT key, value FROM metrics_meta")
        return {r[0]: r[1] for r in rows}

    async def people(self, now: float, midnight: float, idle: float) -> People:
        row = await self.pool.fetchrow(_PEOPLE, now - idle, midnight)
        return People(row[0], row[1], float(row[2] or 0.0), row[3], row[4], float(row[5] or 0.0))

    async def compact(self, now: float, retention: Retention) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_TAKE_QUEUE)
            minutes = {r[0]: bucket_from_row(tuple(r[1:10]), r[10]) for r in rows}
            rolled = _bucket_rows((3600,), rollup(minutes, 3600)) \
                + _bucket_rows((86400,), rollup(minutes, 86400))
            if rolled:
                await conn.executemany(_UPSERT_BUCKET, rolled)
            for level, keep in sorted(retention.by_level.items()):
                await conn.execute(_expire("metrics_buckets", "level = $1 AND start < $2"),
                                   level, int(now) - keep)
            cut = now - PEOPLE_RETENTION
            await conn.execute(_expire("metrics_sessions", "greatest(ended_at, last_seen) < $1"),
                               cut)
            await conn.execute(_expire("metrics_conversations",
                                       "greatest(completed_at, last_seen) < $1"), cut)
        return len(rows)
