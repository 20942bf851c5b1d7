"""The metrics store in the suite's SQLite file (the embedded default)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from botmon.runtime.store import SqliteDatabase, write_transaction
from services.metrics.buckets import Batch, Bucket, rollup
from services.metrics.sketch import Sketch
from services.metrics.store import (
    BUCKET_COLUMNS,
    PEOPLE_RETENTION,
    MetricsStore,
    People,
    Retention,
    bucket_columns,
    bucket_from_row,
)

__all__ = ["SqliteMetricsStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS metrics_buckets (
    level INTEGER NOT NULL, start INTEGER NOT NULL,
    count INTEGER NOT NULL, sum_ms REAL NOT NULL, min_ms REAL, max_ms REAL,
    bytes INTEGER NOT NULL, err_4xx INTEGER NOT NULL, err_5xx INTEGER NOT NULL,
    err_504 INTEGER NOT NULL, messages INTEGER NOT NULL, sketch BLOB NOT NULL,
    PRIMARY KEY (level, start)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS metrics_rollup_queue (
    start INTEGER PRIMARY KEY,
    count INTEGER NOT NULL, sum_ms REAL NOT NULL, min_ms REAL, max_ms REAL,
    bytes INTEGER NOT NULL, err_4xx INTEGER NOT NULL, err_5xx INTEGER NOT NULL,
    err_504 INTEGER NOT NULL, messages INTEGER NOT NULL, sketch BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS metrics_counters (
    name TEXT NOT NULL, labels TEXT NOT NULL, value REAL NOT NULL,
    PRIMARY KEY (name, labels)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS metrics_meta (key TEXT PRIMARY KEY, value REAL NOT NULL);
INSERT OR IGNORE INTO metrics_meta VALUES ('counters_since', (julianday('now') - 2440587.5) * 86400.0);
CREATE TABLE IF NOT EXISTS metrics_sessions (
    session_id TEXT PRIMARY KEY, started_at REAL, last_seen REAL NOT NULL, ended_at REAL);
CREATE INDEX IF NOT EXISTS metrics_sessions_last_seen ON metrics_sessions (last_seen);
CREATE TABLE IF NOT EXISTS metrics_conversations (
    conversation_id TEXT PRIMARY KEY, started_at REAL, last_seen REAL NOT NULL,
    completed_at REAL, messages INTEGER);
CREATE INDEX IF NOT EXISTS metrics_conversations_last_seen ON metrics_conversations (last_seen);
"""

# SQLite's two-argument min()/max() return NULL when either side is; these keep the other.
_LEAST = "min(coalesce({a}, {b}), coalesce({b}, {a}))"
_GREATEST = "max(coalesce({a}, {b}), coalesce({b}, {a}))"

_MERGE = f"""
    count = count + excluded.count, sum_ms = sum_ms + excluded.sum_ms,
    min_ms = {_LEAST.format(a="min_ms", b="excluded.min_ms")},
    max_ms = {_GREATEST.format(a="max_ms", b="excluded.max_ms")},
    bytes = bytes + excluded.bytes, err_4xx = err_4xx + excluded.err_4xx,
    err_5xx = err_5xx + excluded.err_5xx, err_504 = err_504 + excluded.err_504,
    messages = messages + excluded.messages,
    sketch = metrics_sketch_merge(sketch, excluded.sketch)"""

_UPSERT_BUCKET = f"""
INSERT INTO metrics_buckets (level, start, {BUCKET_COLUMNS}, sketch)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (level, start) DO UPDATE SET {_MERGE}"""

_UPSERT_QUEUE = f"""
INSERT INTO metrics_rollup_queue (start, {BUCKET_COLUMNS}, sketch)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (start) DO UPDATE SET {_MERGE}"""

_UPSERT_COUNTER = """
INSERT INTO metrics_counters (name, labels, value) VALUES (?, ?, ?)
ON CONFLICT (name, labels) DO UPDATE SET value = value + excluded.value"""

_UPSERT_META = {
    "last_server_error": "INSERT INTO metrics_meta VALUES ('last_server_error', ?) "
                         "ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
}

_UPSERT_SESSION = f"""
INSERT INTO metrics_sessions (session_id, started_at, last_seen, ended_at) VALUES (?, ?, ?, ?)
ON CONFLICT (session_id) DO UPDATE SET
    started_at = {_LEAST.format(a="started_at", b="excluded.started_at")},
    last_seen = max(last_seen, excluded.last_seen),
    ended_at = {_GREATEST.format(a="ended_at", b="excluded.ended_at")}"""

_UPSERT_CONVERSATION = f"""
INSERT INTO metrics_conversations (conversation_id, started_at, last_seen, completed_at, messages)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (conversation_id) DO UPDATE SET
    started_at = {_LEAST.format(a="started_at", b="excluded.started_at")},
    last_seen = max(last_seen, excluded.last_seen),
    messages = CASE WHEN excluded.completed_at IS NOT NULL
                     AND (completed_at IS NULL OR excluded.completed_at >= completed_at)
                    THEN excluded.messages ELSE messages END,
    completed_at = {_GREATEST.format(a="completed_at", b="excluded.completed_at")}"""

_PEOPLE = """
SELECT
  (SELECT count(*) FROM metrics_sessions
    WHERE ended_at IS NULL AND started_at IS NOT NULL AND last_seen >= :cut),
  (SELECT count(*) FROM metrics_sessions WHERE started_at >= :midnight),
  (SELECT avg(e - started_at) FROM (
     SELECT started_at, coalesce(ended_at, CASE WHEN last_seen < :cut THEN last_seen END) AS e
       FROM metrics_sessions WHERE started_at IS NOT NULL) WHERE e >= :midnight),
  (SELECT count(*) FROM metrics_conversations
    WHERE completed_at IS NULL AND started_at IS NOT NULL AND last_seen >= :cut),
  (SELECT count(*) FROM metrics_conversations WHERE completed_at >= :midnight),
  (SELECT avg(messages) FROM metrics_conversations WHERE completed_at >= :midnight)"""


def _sketch_merge(a: bytes, b: bytes) -> bytes:
    sketch = Sketch.from_flat(Sketch.flat_from_bytes(a))
    sketch.merge_flat(Sketch.flat_from_bytes(b))
    return sketch.to_bytes()


def _bucket_rows(prefix: tuple, buckets: dict[int, Bucket]) -> list[tuple]:
    return [(*prefix, start, *bucket_columns(b), b.sketch.to_bytes())
            for start, b in sorted(buckets.items())]


class SqliteMetricsStore(MetricsStore):
    """Tables in the suite's SQLite file, written from one worker thread."""

    def __init__(self, path: Path):
        self.path = path
        # FULL: a commit survives power loss, since ingest acknowledges after it.
        self.db = SqliteDatabase(path, synchronous="FULL")

    async def open(self) -> None:
        def setup(conn: sqlite3.Connection) -> None:
            conn.create_function("metrics_sketch_merge", 2, _sketch_merge, deterministic=True)
            conn.executescript(_SCHEMA)
        await self.db.run(setup)

    async def close(self) -> None:
        await self.db.close()

    async def write(self, batch: Batch) -> None:
        minutes = rollup(batch.seconds, 60)
        bucket_rows = _bucket_rows((1,), batch.seconds) + _bucket_rows((60,), minutes)
        queue_rows = _bucket_rows((), minutes)
        counters = [(n, lab, v) for (n, lab), v in sorted(batch.counters.items())]
        sessions = [(sid, d.started, d.last_seen, d.ended)
                    for sid, d in sorted(batch.sessions.items())]
        conversations = [(cid, d.started, d.last_seen, d.completed, d.messages)
                         for cid, d in sorted(batch.conversations.items())]
        meta = ([(_UPSERT_META["last_server_error"], batch.last_server_error)]
                if batch.last_server_error is not None else [])

        def write(conn: sqlite3.Connection) -> None:
            with write_transaction(conn):
                conn.executemany(_UPSERT_BUCKET, bucket_rows)
                conn.executemany(_UPSERT_QUEUE, queue_rows)
                conn.executemany(_UPSERT_COUNTER, counters)
                for sql, value in meta:
                    conn.execute(sql, (value,))
                conn.executemany(_UPSERT_SESSION, sessions)
                conn.executemany(_UPSERT_CONVERSATION, conversations)
        await self.db.run(write)

    async def buckets(self, level: int, start: int, end: int) -> dict[int, Bucket]:
        def read(conn: sqlite3.Connection) -> dict[int, Bucket]:
            sql = f"SELECT start, {BUCKET_COLUMNS}, sketch FROM metrics_buckets " \
                  "WHERE level = ? AND start >= ? AND start < ?"
            args: tuple = (level, start, end)
            if level > 60:
                # One statement, so a compaction committing meanwhile is seen wholly or not at all.
                sql += f" UNION ALL SELECT start, {BUCKET_COLUMNS}, sketch FROM metrics_rollup_queue " \
                       "WHERE start >= ? AND start < ?"
                args += (start, end)
            out: dict[int, Bucket] = {}
            for row in conn.execute(sql, args):
                key = row[0] - row[0] % level
                bucket = bucket_from_row(tuple(row[1:10]), Sketch.flat_from_bytes(row[10]))
                if key in out:
                    out[key].merge(bucket)
                else:
                    out[key] = bucket
            return out
        return await self.db.run(read)

    async def counters(self) -> dict[tuple[str, str], float]:
        def read(conn: sqlite3.Connection) -> dict[tuple[str, str], float]:
            rows = conn.execute("SELECT name, labels, value FROM metrics_counters")
            return {(r[0], r[1]): r[2] for r in rows}
        return await self.db.run(read)

    async def meta(self) -> dict[str, float]:
        def read(conn: sqlite3.Connection) -> dict[str, float]:
            return {r[0]: r[1] for r in conn.execute("SELECT key, value FROM metrics_meta")}
        return await self.db.run(read)

    async def people(self, now: float, midnight: float, idle: float) -> People:
        def read(conn: sqlite3.Connection) -> People:
            row = conn.execute(_PEOPLE, {"cut": now - idle, "midnight": midnight}).fetchone()
            return People(row[0], row[1], row[2] or 0.0, row[3], row[4], row[5] or 0.0)
        return await self.db.run(read)

    async def compact(self, now: float, retention: Retention) -> int:
        def compact(conn: sqlite3.Connection) -> int:
            with write_transaction(conn):
                rows = conn.execute(
                    f"SELECT start, {BUCKET_COLUMNS}, sketch FROM metrics_rollup_queue").fetchall()
                conn.execute("DELETE FROM metrics_rollup_queue")
                minutes = {r[0]: bucket_from_row(tuple(r[1:10]), Sketch.flat_from_bytes(r[10]))
                           for r in rows}
                conn.executemany(_UPSERT_BUCKET,
                                 _bucket_rows((3600,), rollup(minutes, 3600))
                                 + _bucket_rows((86400,), rollup(minutes, 86400)))
                for level, keep in retention.by_level.items():
                    conn.execute("DELETE FROM metrics_buckets WHERE level = ? AND start < ?",
                                 (level, int(now) - keep))
                cut = now - PEOPLE_RETENTION
                conn.execute("DELETE FROM metrics_sessions "
                             "WHERE max(coalesce(ended_at, 0), last_seen) < ?", (cut,))
                conn.execute("DELETE FROM metrics_conversations "
                             "WHERE max(coalesce(completed_at, 0), last_seen) < ?", (cut,))
            return len(rows)
        return await self.db.run(compact)
