"""The one interface both log stores implement, and the choice between them.

Tables (prefixed ``logs_``): ``logs_entries`` (the entries, ids increasing in
insertion order), the full-text index (SQLite ``logs_fts``; PostgreSQL a GIN
index on ``to_tsvector('simple', message)``), and ``logs_usage`` — entry and
byte counts kept in the same transactions as inserts and deletes, in a few
shard rows so that replicas writing to one PostgreSQL store do not queue on a
single counter row.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from botmon.runtime.config import Settings
from botmon.runtime.store import StoreLocation
from services.logs.config import LogsSettings
from services.logs.json_page import entry_arrays, entry_objects
from services.logs.query import LogQuery
from services.logs.row import NewEntry, Row

__all__ = ["USAGE_SHARDS", "ErrorCount", "Freed", "JsonPage", "LogStore", "Page", "open_store",
           "usage_shard"]

USAGE_SHARDS = 16


def usage_shard() -> int:
    """The usage row a transaction updates (spread so concurrent writers rarely share one)."""
    return random.randrange(USAGE_SHARDS)


@dataclass
class Page:
    """Up to ``limit + 1`` entries of a query, all its matches, and the snapshot's highest id."""

    rows: list[Row]
    total: int
    high_id: int


@dataclass
class JsonPage:
    """A page of a query as :mod:`services.logs.json_page` renders it: up to ``limit``
    entries as a JSON array of ``LogEntry`` objects, the (ts, id) of the last of them when
    another page follows, all the matches, and the snapshot's highest id."""

    entries: bytes
    last: tuple[int, int] | None
    total: int
    high_id: int


@dataclass
class ErrorCount:
    """Error-level entries of one service and error type."""

    service: str
    error_type: str
    count: int


@dataclass
class Freed:
    """What one retention delete removed."""

    entries: int = 0
    bytes: int = 0


class LogStore(ABC):
    """Durable storage and queries of log entries."""

    kind: str

    @abstractmethod
    async def open(self) -> None:
        """Connect and create the tables and indexes if missing."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections and threads."""

    @abstractmethod
    async def insert(self, entries: list[NewEntry]) -> Sequence[int]:
        """Store entries in one transaction; durable when it returns. Returns their ids."""

    async def index_backlog(self) -> bool:
        """Do a step of index work deferred from commits; True while more remains.

        The group committer calls it whenever no batch waits. A store that does
        all its indexing inside commits has nothing to do.
        """
        return False

    @abstractmethod
    async def list(self, query: LogQuery) -> Page:
        """One page of ``query`` with its exact total, as of the cursor's snapshot."""

    async def list_json(self, query: LogQuery) -> JsonPage:
        """:meth:`list` with the entries rendered as JSON; a store that renders them
        itself overrides it."""
        page = await self.list(query)
        rows = page.rows[:query.limit]
        last = (rows[-1].ts, rows[-1].id) if len(page.rows) > query.limit else None
        return JsonPage(entry_objects(rows), last, page.total, page.high_id)

    @abstractmethod
    async def read_after(self, after_id: int, limit: int) -> tuple[list[Row], int]:
        """Up to ``limit`` entries with ids above ``after_id`` by id, and the highest id stored.

        Ids commit in increasing order (one writer at a time), so a reader that
        resumes after the last id it saw misses nothing.
        """

    async def read_after_json(self, after_id: int, limit: int) -> tuple[bytes, int]:
        """:meth:`read_after` with the entries as ``ReadLogsAfterResponse.entries_json``;
        a store that renders them itself overrides it."""
        rows, high = await self.read_after(after_id, limit)
        return entry_arrays(rows), high

    @abstractmethod
    async def error_counts(self, since: int) -> list[ErrorCount]:
        """Error-level entries at or after ``since`` (ns) by service and ``metadata.error_type``."""

    @abstractmethod
    async def last_error(self) -> int | None:
        """Timestamp (ns) of the newest error-level entry, or None."""

    @abstractmethod
    async def usage(self) -> tuple[int, int]:
        """(entries, bytes) stored now."""

    @abstractmethod
    async def expire(self, level: int, before: int, limit: int) -> Freed:
        """Delete up to ``limit`` entries of ``level`` older than ``before`` (ns), oldest first."""

    @abstractmethod
    async def drop_oldest(self, limit: int) -> Freed:
        """Delete the ``limit`` oldest entries (by timestamp, then id)."""


def open_store(settings: Settings, logs_settings: LogsSettings) -> LogStore:
    """The store ``settings.store_url`` names (not yet opened)."""
    location = StoreLocation.parse(settings.store_url)
    # Imported here because both implementations import this module's interface.
    if location.kind == "postgresql":
        from services.logs.postgres_store import PostgresLogStore
        return PostgresLogStore(location.dsn, pool_size=logs_settings.postgres_pool_size)
    from services.logs.sqlite_store import SqliteLogStore
    return SqliteLogStore(location.path, readers=logs_settings.sqlite_readers)
