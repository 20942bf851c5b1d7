"""The PostgreSQL log store, shared by several logs-service replicas.

Commit policy: each insert is one transaction (ids reserved from the sequence,
rows sent with binary ``COPY``); with the default ``synchronous_commit=on``
its ``COMMIT`` returns once the WAL is flushed, so an acknowledged entry is
durable. Inserts of all replicas take one transaction-scoped advisory lock
before reserving ids, so ids follow commit order: a page walk's snapshot
``max(id)`` then never has an uncommitted id below it that could appear later. Text search uses a GIN index on ``to_tsvector('simple', message)``;
metadata matchers use ``jsonb @>`` with a GIN ``jsonb_path_ops`` index.

Both GIN indexes take new entries into their pending list (``fastupdate``),
which PostgreSQL merges into the index proper in bulk: by autovacuum, or by the
insert that finds the list over ``gin_pending_list_limit``. That merge is most
of what these indexes cost (it is done per entry when the list is small), so
the limit is raised from 4 MB to ``GIN_PENDING_KB`` (set at every start, which
also updates stores created by earlier versions): ingest then leaves most
merging to autovacuum, for about 1.5x the lines per second. The price: a text
or metadata search also scans the pending list, up to about 200,000 entries
(measured: a rare word 28 ms with 150,000 pending, 0.5 ms once merged); results
are exact either way.
"""

from __future__ import annotations

import json
from collections import Counter

import asyncpg

from botmon.runtime.pg_statistics import Growth
from botmon.runtime.store import close_pool
from services.logs import entry_counts, error_rollups
from services.logs.levels import ERROR
from services.logs.query import LogQuery, Matcher
from services.logs.row import NewEntry, Row
from services.logs.sql import COLUMNS, bounded, list_sql, oldest_sql, seed_sql, stored_total_sql
from services.logs.store import ErrorCount, Freed, LogStore, Page, usage_shard

#: Advisory lock key that orders inserts across replicas ("botmon:logs:insert").
INSERT_LOCK = 0x626F746D6F6E6C67

#: Pending-list size of each GIN index, in kB (PostgreSQL's default is 4 MB).
GIN_PENDING_KB = 32 * 1024

__all__ = ["PostgresLogStore"]

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS logs_entries (
    id BIGSERIAL PRIMARY KEY,
    ts BIGINT NOT NULL,
    level SMALLINT NOT NULL,
    service TEXT NOT NULL,
    message TEXT NOT NULL,
    metadata JSONB,
    size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_entries_service_level_ts
    ON logs_entries (service, level, ts, id);
CREATE INDEX IF NOT EXISTS logs_entries_level_ts ON logs_entries (level, ts, id);
CREATE INDEX IF NOT EXISTS logs_entries_text
    ON logs_entries USING gin (to_tsvector('simple', message));
CREATE INDEX IF NOT EXISTS logs_entries_metadata
    ON logs_entries USING gin (metadata jsonb_path_ops);
ALTER INDEX logs_entries_text SET (gin_pending_list_limit = {GIN_PENDING_KB});
ALTER INDEX logs_entries_metadata SET (gin_pending_list_limit = {GIN_PENDING_KB});
CREATE TABLE IF NOT EXISTS logs_usage (
    shard SMALLINT PRIMARY KEY,
    entries BIGINT NOT NULL,
    bytes BIGINT NOT NULL
);
"""

_COLUMNS = ["id", "ts", "level", "service", "message", "metadata", "size"]
_USAGE = ("INSERT INTO logs_usage (shard, entries, bytes) VALUES ($1, $2, $3) "
          "ON CONFLICT (shard) DO UPDATE SET entries = logs_usage.entries + excluded.entries, "
          "bytes = logs_usage.bytes + excluded.bytes")
_COUNTS = entry_counts.UPSERT.format("$1", "$2", "$3", "$4")
_ERRORS = error_rollups.UPSERT.format("$1", "$2", "$3", "$4", "$5")


class PostgresDialect:
    """The SQL that differs from SQLite's."""

    def placeholder(self, index: int) -> str:
        return f"${index}"

    def merged(self, arms: list[str], order: str, n: int) -> str:
        # Limited arms under an ordered, limited union: a Merge Append of backward index
        # scans that stops after n rows (an unlimited union would be sorted whole).
        limited = [f"SELECT * FROM ({arm} {order} LIMIT {n}) AS l{i}" for i, arm in enumerate(arms)]
        return f"{' UNION ALL '.join(limited)} {order} LIMIT {n}"

    def text_search(self, terms, add, id_span) -> str:
        # PostgreSQL's planner combines the GIN and btree indexes itself (bitmap AND).
        return (f"to_tsvector('simple', message) @@ "
                f"plainto_tsquery('simple', {add(' '.join(terms))})")

    def metadata(self, matcher: Matcher, add) -> str:
        options = []
        for value in matcher.values:
            document: object = value
            for key in reversed(matcher.path):
                document = {key: document}
            options.append(f"metadata @> {add(json.dumps(document))}::jsonb")
        return "(" + " OR ".join(options) + ")"


def _row(r: asyncpg.Record) -> Row:
    return Row(r[0], r[1], r[2], r[3], r[4], r[5])


class PostgresLogStore(LogStore):
    """Log entries in PostgreSQL."""

    kind = "postgresql"

    def __init__(self, dsn: str, *, pool_size: int = 4, timeout: float = 10.0):
        self.dsn = dsn
        self.pool_size = pool_size
        self.timeout = timeout
        self._pool: asyncpg.Pool | None = None
        self._dialect = PostgresDialect()
        #: Statistics of the entries kept in step with their growth (the plans follow).
        self._growth: Growth | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the PostgreSQL log store is not open")
        return self._pool

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(
            self.dsn, min_size=1, max_size=self.pool_size, timeout=self.timeout,
            command_timeout=60)
        async with self.pool.acquire() as conn, conn.transaction():
            # Replicas starting together would race on CREATE ... IF NOT EXISTS.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('botmon.logs.schema'))")
            await conn.execute(SCHEMA + entry_counts.SCHEMA + error_rollups.SCHEMA)
            await conn.execute(entry_counts.INIT)
            if not await conn.fetchval("SELECT 1 FROM logs_error_minutes LIMIT 1"):
                # A store of a version without rollups (or without errors): roll up once.
                await conn.executemany(_ERRORS, error_rollups.changes(error_rollups.of_rows(
                    await conn.fetch("SELECT ts, service, metadata::text FROM logs_entries "
                                     "WHERE level = $1", ERROR)), 0))
            self._growth = Growth(self.pool, "logs_entries")
            await self._growth.prime(conn)

    async def close(self) -> None:
        if self._growth is not None:
            await self._growth.close()
        if self._pool is not None:
            await close_pool(self._pool)
            self._pool = None

    async def insert(self, entries: list[NewEntry]) -> list[int]:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", INSERT_LOCK)
            ids = [r[0] for r in await conn.fetch(
                "SELECT nextval(pg_get_serial_sequence('logs_entries', 'id')) "
                "FROM generate_series(1, $1)", len(entries))]
            await conn.copy_records_to_table(
                "logs_entries", columns=_COLUMNS,
                records=[(i, e[0], e[1], e[2], e[3], e[4], e[5])
                         for i, e in zip(ids, entries, strict=True)])
            shard = usage_shard()
            await conn.execute(_USAGE, shard, len(entries), sum(e[5] for e in entries))
            await conn.executemany(_COUNTS, entry_counts.changes(entry_counts.by_key(entries),
                                                                 shard))
            errors = error_rollups.of_entries(entries)
            if errors:
                await conn.executemany(_ERRORS, error_rollups.changes(errors, shard))
        self._growth.added(len(entries))
        return ids

    async def list(self, query: LogQuery) -> Page:
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read",
                                                                  readonly=True):
            if query.after is not None:
                high_id = query.after.high_id
            else:
                high_id = await conn.fetchval("SELECT coalesce(max(id), 0) FROM logs_entries")
            if query.filter.terms:
                return await self._search(conn, query, high_id)
            sql = list_sql(query, high_id, self._dialect, "logs_entries")
            total_sql, total_params = (stored_total_sql(query, high_id, self._dialect)
                                       or (sql.count, sql.count_params))
            total = await conn.fetchval(total_sql, *total_params)
            rows = [_row(r) for r in await conn.fetch(sql.page, *sql.page_params)]
        return Page(rows, total, high_id)

    async def _search(self, conn: asyncpg.Connection, query: LogQuery, high_id: int) -> Page:
        """A text search: its first matches in id order bound the page (see ``bounded``), so
        a common word is not sorted in full; fewer than a page are the whole answer."""
        seed, params = seed_sql(query, high_id, self._dialect, "logs_entries")
        first = [_row(r) for r in await conn.fetch(seed, *params)]
        narrowed = bounded(query, first)
        if narrowed is None:
            first.sort(key=lambda r: (r.ts, r.id), reverse=query.order == "desc")
            if query.after is None:
                return Page(first, len(first), high_id)
        sql = list_sql(narrowed or query, high_id, self._dialect, "logs_entries")
        total = await conn.fetchval(*_count_of(query, high_id, self._dialect))
        rows = first if narrowed is None else [
            _row(r) for r in await conn.fetch(sql.page, *sql.page_params)]
        return Page(rows, total, high_id)

    async def read_after(self, after_id: int, limit: int) -> tuple[list[Row], int]:
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read",
                                                                  readonly=True):
            rows = [_row(r) for r in await conn.fetch(
                f"SELECT {COLUMNS} FROM logs_entries "
                "WHERE id > $1 ORDER BY id LIMIT $2", after_id, limit)]
            high = await conn.fetchval("SELECT coalesce(max(id), 0) FROM logs_entries")
        return rows, high

    async def error_counts(self, since: int) -> list[ErrorCount]:
        minute = error_rollups.first_whole_minute(since)
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read",
                                                                  readonly=True):
            whole = await conn.fetch(error_rollups.SUMMARY.format("$1"), minute)
            partial = await conn.fetch(
                "SELECT service, metadata::text FROM logs_entries WHERE level = $1 "
                "AND ts >= $2 AND ts < $3", ERROR, since, minute * error_rollups.MINUTE_NS)
        return error_rollups.combine(((r[0], r[1], r[2]) for r in whole),
                                     ((r[0], r[1]) for r in partial))

    async def last_error(self) -> int | None:
        return await self.pool.fetchval("SELECT max(ts) FROM logs_entries WHERE level = $1", ERROR)

    async def usage(self) -> tuple[int, int]:
        record = await self.pool.fetchrow(
            "SELECT coalesce(sum(entries), 0)::bigint, coalesce(sum(bytes), 0)::bigint "
            "FROM logs_usage")
        return record[0], record[1]

    async def _delete(self, victims: str, *params) -> Freed:
        async with self.pool.acquire() as conn, conn.transaction():
            # SKIP LOCKED: replicas enforcing retention at once take different rows.
            gone = await conn.fetch(
                f"WITH gone AS (DELETE FROM logs_entries WHERE id IN ({victims} "
                f"FOR UPDATE SKIP LOCKED) RETURNING service, level, size, ts, metadata) "
                f"SELECT service, level, size, ts, "
                f"CASE WHEN level = {ERROR} THEN metadata::text END FROM gone", *params)
            freed = Freed(len(gone), sum(r[2] for r in gone))
            if freed.entries:
                shard = usage_shard()
                await conn.execute(_USAGE, shard, -freed.entries, -freed.bytes)
                await conn.executemany(_COUNTS, entry_counts.changes(
                    Counter((r[0], r[1]) for r in gone), shard, -1))
                errors = error_rollups.of_rows((r[3], r[0], r[4]) for r in gone if r[1] == ERROR)
                if errors:
                    await conn.executemany(_ERRORS, error_rollups.changes(errors, shard, -1))
                    await conn.execute(error_rollups.PRUNE.format("$1", "$2"),
                                       min(errors)[0], max(errors)[0])
        return freed

    async def expire(self, level: int, before: int, limit: int) -> Freed:
        return await self._delete(
            "SELECT id FROM logs_entries WHERE level = $1 AND ts < $2 ORDER BY ts LIMIT $3",
            level, before, limit)

    async def drop_oldest(self, limit: int) -> Freed:
        return await self._delete(
            f"SELECT id FROM logs_entries WHERE id IN ({oldest_sql('logs_entries', '$1')})",
            limit)

    def __repr__(self) -> str:
        return "PostgresLogStore()"


def _count_of(query: LogQuery, high_id: int, dialect: PostgresDialect) -> list:
    sql = list_sql(query, high_id, dialect, "logs_entries")
    return [sql.count, *sql.count_params]
