"""One async SQL interface over the suite's store: SQLite (embedded) or PostgreSQL (shared).

Statements are written once with ``?`` placeholders; the PostgreSQL adapter
numbers them (``$1``…). A transaction is ``async with db.transaction() as tx``.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

import asyncpg

from botmon.runtime.store import SqliteDatabase, StoreLocation, close_pool

__all__ = ["Database", "Transaction", "open_database"]

_PLACEHOLDER = re.compile(r"\?")


class Transaction(Protocol):
    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int: ...
    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...
    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]: ...


class Database(Protocol):
    kind: str
    location: StoreLocation

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]: ...
    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int: ...
    def transaction(self): ...
    async def forget_overwritten(self) -> None: ...
    async def close(self) -> None: ...


class _SqliteTx:
    def __init__(self, db: SqliteDatabase):
        self._db = db

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        return await self._db.run(lambda conn: conn.execute(sql, tuple(args)).rowcount)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            await self._db.run(lambda conn: conn.executemany(sql, rows))

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        def run(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            return [dict(row) for row in conn.execute(sql, tuple(args)).fetchall()]
        return await self._db.run(run)


class SqliteStore:
    """SQLite through the runtime's single-connection worker; one transaction at a time."""

    kind = "sqlite"

    def __init__(self, location: StoreLocation):
        assert location.path is not None
        self.location = location
        self._db = SqliteDatabase(location.path)
        self._lock = asyncio.Lock()
        self._tx = _SqliteTx(self._db)

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        async with self._lock:
            return await self._tx.fetch(sql, args)

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        async with self._lock:
            return await self._tx.execute(sql, args)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_SqliteTx]:
        # The connection is shared by the whole process, so a transaction owns it until done.
        async with self._lock:
            await self._db.run(lambda conn: conn.execute("BEGIN IMMEDIATE"))
            try:
                yield self._tx
            except BaseException:
                await asyncio.shield(self._db.run(lambda conn: conn.execute("ROLLBACK")))
                raise
            await self._db.run(lambda conn: conn.execute("COMMIT"))

    async def forget_overwritten(self) -> None:
        """Leave no copy of overwritten rows in the files: secure_delete (set on open) has
        zeroed them in the database pages; this empties the WAL, which still holds them."""
        async with self._lock:
            await self._db.run(lambda conn: conn.execute("PRAGMA wal_checkpoint(TRUNCATE)"))

    async def close(self) -> None:
        await self._db.close()


def _numbered(sql: str) -> str:
    counter = iter(range(1, 10_000))
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)


def _rowcount(status: str) -> int:
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdecimal() else 0


class _PgTx:
    def __init__(self, conn: asyncpg.Connection, timeout: float):
        self._conn = conn
        self._timeout = timeout

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        return _rowcount(await self._conn.execute(_numbered(sql), *args, timeout=self._timeout))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            await self._conn.executemany(_numbered(sql), rows, timeout=self._timeout)

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        records = await self._conn.fetch(_numbered(sql), *args, timeout=self._timeout)
        return [dict(r) for r in records]


class PostgresStore:
    """PostgreSQL through an asyncpg pool; every statement has a timeout."""

    kind = "postgresql"

    def __init__(self, location: StoreLocation, pool: asyncpg.Pool, timeout: float):
        self.location = location
        self._pool = pool
        self._timeout = timeout

    @classmethod
    async def connect(cls, location: StoreLocation, deadline: float) -> PostgresStore:
        pool = await asyncpg.create_pool(location.dsn, min_size=1, max_size=5, timeout=deadline,
                                         command_timeout=deadline)
        return cls(location, pool, deadline)

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        async with self._pool.acquire(timeout=self._timeout) as conn:
            return await _PgTx(conn, self._timeout).fetch(sql, args)

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        async with self._pool.acquire(timeout=self._timeout) as conn:
            return await _PgTx(conn, self._timeout).execute(sql, args)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_PgTx]:
        async with self._pool.acquire(timeout=self._timeout) as conn, conn.transaction():
            yield _PgTx(conn, self._timeout)

    async def forget_overwritten(self) -> None:
        """Reclaim the dead row versions an overwrite left behind."""
        async with self._pool.acquire(timeout=self._timeout) as conn:
            await conn.execute("VACUUM alerts_rules, alerts_alerts, alerts_outbox",
                               timeout=self._timeout)

    async def close(self) -> None:
        await close_pool(self._pool)


async def open_database(store_url: str, deadline: float) -> SqliteStore | PostgresStore:
    """Open the store named by ``BOTMON_STORE_URL``."""
    location = StoreLocation.parse(store_url)
    if location.kind == "sqlite":
        store = SqliteStore(location)
        # Deleted and overwritten rows are zeroed, so a re-sealed secret leaves no plaintext.
        await store.execute("PRAGMA secure_delete = ON")
        return store
    return await PostgresStore.connect(location, deadline)
