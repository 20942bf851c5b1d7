"""Where the suite's store lives, and the SQLite connection every store shares."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import asyncpg

from botmon.runtime.datadir import private_file
from botmon.runtime.scheduling import idle

__all__ = ["SqliteDatabase", "StoreLocation", "close_pool", "write_transaction"]

#: How long closing a PostgreSQL pool waits for calls in flight before it cuts them.
POOL_CLOSE_TIMEOUT = 5.0

T = TypeVar("T")


@dataclass(frozen=True)
class StoreLocation:
    """A parsed ``BOTMON_STORE_URL``: ``sqlite:///path`` or ``postgresql://…``."""

    kind: str
    dsn: str
    path: Path | None = None

    @classmethod
    def parse(cls, url: str) -> StoreLocation:
        scheme = urlsplit(url).scheme.lower()
        if scheme == "sqlite":
            # sqlite:///relative.db and sqlite:////abs/path.db, as SQLAlchemy reads them.
            return cls("sqlite", url, Path(url.split("://", 1)[1][1:]))
        if scheme in ("postgresql", "postgres"):
            return cls("postgresql", url)
        raise ValueError(f"unsupported store URL scheme {scheme!r}; use sqlite:// or postgresql://")


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` on ``conn`` (autocommit mode), ``COMMIT`` when the block ends
    and ``ROLLBACK`` when it, or the commit itself, fails."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


async def close_pool(pool: asyncpg.Pool, grace: float = POOL_CLOSE_TIMEOUT) -> None:
    """Close an asyncpg pool: gracefully within ``grace`` seconds, then by terminating the
    connections left. ``Pool.close`` alone waits for every connection to be released, so
    one call that never returns would hold the process's stop for ever."""
    try:
        await asyncio.wait_for(pool.close(), grace)
    except TimeoutError:
        pool.terminate()


class SqliteDatabase:
    """One SQLite connection in WAL mode, used from a single worker thread.

    ``await db.run(fn)`` calls ``fn(connection)`` on that thread, so every
    statement of the process is serialised without blocking the event loop. A
    ``background`` database runs its thread in the idle scheduling class
    (:mod:`botmon.runtime.scheduling`): work that must not take CPU from the rest of
    the process when it is short.
    """

    def __init__(self, path: Path, *, synchronous: str = "NORMAL", background: bool = False):
        # The file is made 0600 before SQLite opens it: SQLite gives its WAL and shared-memory
        # files the database file's mode, so they are private too, whatever the umask.
        private_file(path)
        for companion in ("-wal", "-shm"):
            extra = path.with_name(path.name + companion)
            if extra.exists():
                private_file(extra)
        self.path = path
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"sqlite-{path.name}",
            initializer=idle if background else None)
        self._local = threading.local()
        self._synchronous = synchronous
        self._connections: list[sqlite3.Connection] = []

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=30)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
            self._connections.append(conn)
        return conn

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self._connection()))

    def run_here(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn(connection)`` on the calling thread, over that thread's own connection: for a
        read of a few index pages, which costs less than the hop to the worker thread and
        back (a thread wakeup each way, about 0.3 ms of CPU on a busy 2-core machine)."""
        return fn(self._connection())

    async def close(self) -> None:
        def _close(_conn):
            for conn in self._connections:
                conn.close()
            self._connections.clear()
            self._local.conn = None
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, lambda: _close(None))
        self._executor.shutdown(wait=True)
