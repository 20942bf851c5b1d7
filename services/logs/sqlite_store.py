"""The SQLite log store: WAL, one writer thread committing with ``synchronous=FULL``.

Commit policy: every insert is one transaction on the writer connection, whose
``COMMIT`` fsyncs the write-ahead log (``PRAGMA synchronous=FULL``) before
``insert`` returns, so an acknowledged entry survives ``kill -9`` and power
loss. Concurrent batches are merged into one such commit by the group
committer in front of this store, so the fsync is shared. Queries run on
separate read connections (WAL lets them read while the writer writes).
Full-text indexing follows the commits instead of being part of them; see
:mod:`services.logs.sqlite_fts` for how ``q`` searches stay exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from botmon.runtime.store import SqliteDatabase, write_transaction
from services.logs import entry_counts, error_rollups, sqlite_fts, sqlite_json, sqlite_search
from services.logs.json_page import struct_numbers
from services.logs.levels import ERROR
from services.logs.query import LogQuery, Matcher
from services.logs.row import NewEntry, Row
from services.logs.sql import COLUMNS, ListSql, counted, list_sql, oldest_sql, stored_total_sql
from services.logs.store import ErrorCount, Freed, JsonPage, LogStore, Page, usage_shard

__all__ = ["SqliteLogStore"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS logs_entries (
    id INTEGER PRIMARY KEY,
    ts INTEGER NOT NULL,
    level INTEGER NOT NULL,
    service TEXT NOT NULL,
    message TEXT NOT NULL,
    metadata TEXT,
    size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_entries_service_level_ts ON logs_entries (service, level, ts);
CREATE INDEX IF NOT EXISTS logs_entries_level_ts ON logs_entries (level, ts);
CREATE VIRTUAL TABLE IF NOT EXISTS logs_fts USING fts5(
    message, content='logs_entries', content_rowid='id', detail='none', columnsize=0);
CREATE TABLE IF NOT EXISTS logs_usage (
    shard INTEGER PRIMARY KEY,
    entries INTEGER NOT NULL,
    bytes INTEGER NOT NULL
);
"""

# Rows go in as multi-row VALUES statements of up to CHUNK rows (one per typical
# message): binding a chunk is one C loop, and its insert then runs inside SQLite
# without the GIL, where executemany would take the GIL back for every row and
# stall up to the 5 ms switch interval behind the event loop's thread (a convoy
# that made ingest 4x slower under load). This beats the JSON array through
# json_each it replaced by ~30%, which re-parsed the row text for every column.
CHUNK = 5000
_COLUMNS = "INSERT INTO logs_entries (ts, level, service, message, metadata, size) VALUES "


@functools.lru_cache(maxsize=8)
def _insert_sql(rows: int) -> str:
    """The INSERT of ``rows`` rows (6 parameters each, under SQLite's limit of 32766)."""
    return _COLUMNS + ",".join(["(?,?,?,?,?,?)"] * rows)


_USAGE = ("INSERT INTO logs_usage (shard, entries, bytes) VALUES (?, ?, ?) "
          "ON CONFLICT (shard) DO UPDATE SET entries = entries + excluded.entries, "
          "bytes = bytes + excluded.bytes")
#: What a retention delete reads of each entry it removes.
_VICTIM = "id, size, message, service, level, ts, metadata"
_COUNTS = entry_counts.UPSERT.format("?", "?", "?", "?")
_ERRORS = error_rollups.UPSERT.format("?", "?", "?", "?", "?")


class SqliteDialect:
    """The SQL that differs from PostgreSQL's."""

    def placeholder(self, index: int) -> str:
        return f"?{index}"  # numbered, so a parameter can be used twice

    def merged(self, arms: list[str], order: str, n: int) -> str:
        # A compound ordered as a whole: SQLite merges its arms, each in index order
        # (limited or wrapped arms would each be sorted into a temporary b-tree first).
        return f"{' UNION ALL '.join(arms)} {order} LIMIT {n}"

    def text_search(self, terms, add, id_span) -> str:
        match = " ".join(f'"{term}"' for term in terms)
        span = f" AND rowid BETWEEN {add(id_span[0])} AND {add(id_span[1])}" if id_span else ""
        return f"id IN (SELECT rowid FROM logs_fts WHERE logs_fts MATCH {add(match)}{span})"

    def metadata(self, matcher: Matcher, add) -> str:
        path = "$" + "".join(f'."{key}"' for key in matcher.path)
        p = add(path)
        options = [f"(json_type(metadata, {p}) = 'text' AND "
                   f"json_extract(metadata, {p}) = {add(matcher.text)})"]
        for value in matcher.alternatives:
            if isinstance(value, bool):
                options.append(f"json_type(metadata, {p}) = {add('true' if value else 'false')}")
            else:
                options.append(f"(json_type(metadata, {p}) IN ('integer', 'real') AND "
                               f"json_extract(metadata, {p}) = {add(value)})")
        return "(" + " OR ".join(options) + ")"


def _row(r: sqlite3.Row) -> Row:
    return Row(r[0], r[1], r[2], r[3], r[4], r[5])


_HIGH_ID = "SELECT coalesce(max(id), 0) FROM logs_entries"
_AFTER = f"SELECT {COLUMNS} FROM logs_entries WHERE id > ? ORDER BY id LIMIT ?"
#: The entries of ``_AFTER``, with their sizes, as one JSON array
#: (:mod:`services.logs.sqlite_json`), a BLOB so that it arrives as the bytes the reply carries.
_AFTER_JSON = (f"SELECT CAST('[' || coalesce(group_concat({sqlite_json.ENTRY_ARRAY}, ','), '')"
               f" || ']' AS BLOB) FROM (SELECT {COLUMNS}, size FROM logs_entries "
               "WHERE id > ? ORDER BY id LIMIT ?)")


#: Between the entries of a page as SQLite joins them: a byte that JSON text never holds
#: raw (control characters in strings are escaped), so it marks where each entry ends.
_APART = b"\x01"


def _json_page_sql(page: str) -> str:
    """The rows of ``page`` (``limit + 1`` at most) as JSON ``LogEntry`` objects joined by
    ``_APART``, their number, and whether their metadata may hold numbers (one match
    over all of it: a pattern matched per row costs more than the rest of the row)."""
    return (f"SELECT CAST(group_concat({sqlite_json.ENTRY_OBJECT}, char({_APART[0]})) AS BLOB), "
            f"count(*), group_concat(metadata) GLOB '{sqlite_json.NUMBERS}' FROM ({page})")


def _json_page(row: tuple, limit: int) -> tuple[bytes, tuple[int, int] | None]:
    """What :func:`_json_page_sql` read: the first ``limit`` entries as a JSON array, and the
    position of the last of them when another page follows."""
    entries, count, numbers = row
    last = None
    if count > limit:
        entries = entries[:entries.rindex(_APART)]
        last = sqlite_json.position(entries[entries.rfind(_APART) + 1:])
    entries = b"[" + entries.replace(_APART, b",") + b"]" if count else b"[]"
    return struct_numbers(entries) if numbers else entries, last


@contextlib.contextmanager
def _snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """One read transaction: every statement inside sees the same entries."""
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


def _high_id(conn: sqlite3.Connection, query: LogQuery) -> int:
    """The highest id ``query`` may return in this snapshot."""
    if query.after is not None:
        # A search's first page capped it at indexed_id: later pages need nothing newer
        # from the full-text index.
        return query.after.high_id
    high_id = conn.execute(_HIGH_ID).fetchone()[0]
    if query.filter.terms:
        # Entries committed since the catch-up are not indexed yet: the snapshot ends
        # before them (they arrived after the search began).
        high_id = min(high_id, sqlite_fts.indexed_id(conn))
    return high_id


class SqliteLogStore(LogStore):
    """Log entries in the suite's SQLite file."""

    kind = "sqlite"

    def __init__(self, path: Path, *, readers: int = 2):
        self.path = path
        self._writer = SqliteDatabase(path, synchronous="FULL")
        self._readers = [SqliteDatabase(path) for _ in range(readers)]
        self._next_reader = itertools.cycle(self._readers)
        #: Reads for exporters (``read_after``): in the idle scheduling class, so that on
        #: a busy machine the export's catching up gives way to ingest and queries, which
        #: share this process's CPU. The work of such a read is SQLite's, done without the
        #: GIL, so the thread seldom holds what the others wait for while it waits for a CPU.
        self._background = SqliteDatabase(path, background=True)
        self._dialect = SqliteDialect()
        #: ``logs_fts_state.indexed_id`` as the writer last saw it (only the writer thread
        #: touches it); it decides when a commit indexes its backlog itself.
        self._indexed = 0

    async def open(self) -> None:
        def create(conn: sqlite3.Connection) -> None:
            conn.execute("PRAGMA cache_size=-65536")
            conn.executescript(SCHEMA + sqlite_fts.SCHEMA + entry_counts.SCHEMA
                               + error_rollups.SCHEMA)
            with write_transaction(conn):
                conn.execute(sqlite_fts.INIT)
                conn.execute(entry_counts.INIT)
                if not conn.execute("SELECT 1 FROM logs_error_minutes LIMIT 1").fetchone():
                    # A store of a version without rollups (or without errors): roll up once.
                    conn.executemany(_ERRORS, error_rollups.changes(error_rollups.of_rows(
                        conn.execute("SELECT ts, service, metadata FROM logs_entries "
                                     "WHERE level = ?", (ERROR,))), 0))
            self._indexed = sqlite_fts.indexed_id(conn)
        await self._writer.run(create)
        def cache(conn: sqlite3.Connection) -> None:
            conn.execute("PRAGMA cache_size=-32768")
        for reader in (*self._readers, self._background):
            await reader.run(cache)
        self._readers[0].run_here(cache)  # the event loop's connection (list_json)

    async def close(self) -> None:
        await asyncio.gather(self._writer.close(), self._background.close(),
                             *(r.close() for r in self._readers))

    def _read(self, fn):
        return next(self._next_reader).run(fn)

    async def insert(self, entries: list[NewEntry]) -> range:
        def write(conn: sqlite3.Connection) -> range:
            with write_transaction(conn):
                # Under the write lock, rowids after max(id) are handed out consecutively;
                # ids come from lastrowid, since each extra statement is another wait for
                # the GIL behind the event loop's thread.
                flat = list(itertools.chain.from_iterable(entries))
                first = last = 0
                for start in range(0, len(entries), CHUNK):
                    rows = min(CHUNK, len(entries) - start)
                    last = conn.execute(_insert_sql(rows),
                                        flat[start * 6:(start + rows) * 6]).lastrowid
                    first = first or last - rows + 1
                if last - first + 1 != len(entries):
                    raise RuntimeError(f"ids {first}..{last} do not match {len(entries)} rows")
                catch_up = last - self._indexed > sqlite_fts.MAX_BACKLOG
                if catch_up:
                    sqlite_fts.index(conn, last)
                shard = usage_shard()
                conn.execute(_USAGE, (shard, len(entries), sum(e[5] for e in entries)))
                conn.executemany(_COUNTS, entry_counts.changes(entry_counts.by_key(entries),
                                                               shard))
                conn.executemany(_ERRORS, error_rollups.changes(
                    error_rollups.of_entries(entries), shard))
            if catch_up:
                self._indexed = last
            return range(first, last + 1)
        return await self._writer.run(write)

    async def index_backlog(self) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            self._indexed, waiting = sqlite_fts.step(conn, sqlite_fts.STEP)
            return waiting > 0
        return await self._writer.run(work)

    async def _index_all(self) -> None:
        def work(conn: sqlite3.Connection) -> None:
            self._indexed = sqlite_fts.step(conn, None)[0]
        await self._writer.run(work)

    async def list(self, query: LogQuery) -> Page:
        if query.filter.terms and query.after is None:
            # Every entry acknowledged before this search is indexed when it reads.
            await self._index_all()

        def read(conn: sqlite3.Connection) -> Page:
            with _snapshot(conn):
                high_id = _high_id(conn, query)
                if query.filter.terms:
                    rows, total = sqlite_search.search(conn, query, high_id, self._dialect)
                    return Page(rows, total, high_id)
                sql, total = self._counted(conn, query, high_id)
                return Page([_row(r) for r in conn.execute(sql.page, sql.page_params)], total,
                            high_id)
        return await self._read(read)

    async def list_json(self, query: LogQuery) -> JsonPage:
        if query.filter.terms:
            # A search's rows come from the full-text index's own statements.
            return await super().list_json(query)

        def read(conn: sqlite3.Connection) -> JsonPage:
            with _snapshot(conn):
                high_id = _high_id(conn, query)
                sql, total = self._counted(conn, query, high_id)
                row = conn.execute(_json_page_sql(sql.page), sql.page_params).fetchone()
            return JsonPage(*_json_page(row, query.limit), total, high_id)
        if counted(query) and query.after is None:
            # The page is n rows of each level's index range and the total is stored: a
            # read of a few pages, done on the event loop rather than paying the hop.
            return self._readers[0].run_here(read)
        return await self._read(read)

    def _counted(self, conn: sqlite3.Connection, query: LogQuery, high_id: int
                 ) -> tuple[ListSql, int]:
        """The statements of a page without text search, and its exact total."""
        sql = list_sql(query, high_id, self._dialect, "logs_entries")
        total_sql, total_params = (stored_total_sql(query, high_id, self._dialect)
                                   or (sql.count, sql.count_params))
        return sql, conn.execute(total_sql, total_params).fetchone()[0]

    async def read_after(self, after_id: int, limit: int) -> tuple[list[Row], int]:
        def read(conn: sqlite3.Connection) -> tuple[list[Row], int]:
            with _snapshot(conn):
                rows = [_row(r) for r in conn.execute(_AFTER, (after_id, limit))]
                return rows, conn.execute(_HIGH_ID).fetchone()[0]
        return await self._background.run(read)

    async def read_after_json(self, after_id: int, limit: int) -> tuple[bytes, int]:
        def read(conn: sqlite3.Connection) -> tuple[bytes, int]:
            with _snapshot(conn):
                entries = conn.execute(_AFTER_JSON, (after_id, limit)).fetchone()[0]
                return entries, conn.execute(_HIGH_ID).fetchone()[0]
        return await self._background.run(read)

    async def error_counts(self, since: int) -> list[ErrorCount]:
        minute = error_rollups.first_whole_minute(since)

        def read(conn: sqlite3.Connection) -> list[ErrorCount]:
            conn.execute("BEGIN")  # one snapshot for the rollups and the partial minute
            try:
                whole = conn.execute(error_rollups.SUMMARY.format("?"), (minute,)).fetchall()
                partial = conn.execute(
                    "SELECT service, metadata FROM logs_entries WHERE level = ? AND ts >= ? "
                    "AND ts < ?", (ERROR, since, minute * error_rollups.MINUTE_NS)).fetchall()
            finally:
                conn.execute("COMMIT")
            return error_rollups.combine(whole, partial)
        return await self._read(read)

    async def last_error(self) -> int | None:
        return await self._read(lambda conn: conn.execute(
            "SELECT max(ts) FROM logs_entries WHERE level = ?", (ERROR,)).fetchone()[0])

    async def usage(self) -> tuple[int, int]:
        def read(conn: sqlite3.Connection) -> tuple[int, int]:
            entries, size = conn.execute(
                "SELECT coalesce(sum(entries), 0), coalesce(sum(bytes), 0) FROM logs_usage"
            ).fetchone()
            return entries, size
        return await self._read(read)

    async def _delete(self, select: str, params: tuple) -> Freed:
        def delete(conn: sqlite3.Connection) -> Freed:
            with write_transaction(conn):
                victims = conn.execute(select, params).fetchall()  # the _VICTIM columns
                if not victims:
                    return Freed()
                # External-content FTS needs the old text to unindex it; entries of
                # the backlog were never indexed (and must not be unindexed).
                indexed = sqlite_fts.indexed_id(conn)
                conn.executemany("INSERT INTO logs_fts (logs_fts, rowid, message) "
                                 "VALUES ('delete', ?, ?)",
                                 [(v[0], v[2]) for v in victims if v[0] <= indexed])
                conn.executemany("DELETE FROM logs_entries WHERE id = ?",
                                 [(v[0],) for v in victims])
                freed = Freed(len(victims), sum(v[1] for v in victims))
                shard = usage_shard()
                conn.execute(_USAGE, (shard, -freed.entries, -freed.bytes))
                conn.executemany(_COUNTS, entry_counts.changes(
                    Counter((v[3], v[4]) for v in victims), shard, -1))
                errors = error_rollups.of_rows((v[5], v[3], v[6]) for v in victims
                                               if v[4] == ERROR)
                if errors:
                    conn.executemany(_ERRORS, error_rollups.changes(errors, shard, -1))
                    conn.execute(error_rollups.PRUNE.format("?", "?"),
                                 (min(errors)[0], max(errors)[0]))
            return freed
        return await self._writer.run(delete)

    async def expire(self, level: int, before: int, limit: int) -> Freed:
        return await self._delete(
            f"SELECT {_VICTIM} FROM logs_entries WHERE level = ? AND ts < ? "
            "ORDER BY ts LIMIT ?", (level, before, limit))

    async def drop_oldest(self, limit: int) -> Freed:
        return await self._delete(
            f"SELECT {_VICTIM} FROM logs_entries "
            f"WHERE id IN ({oldest_sql('logs_entries', '?1')})", (limit,))

    def __repr__(self) -> str:
        return f"SqliteLogStore({str(self.path)!r})"

