"""Each destination's position, counters and lease, kept in the suite's store.

One row per destination in ``export_destinations``. A replica exports a
destination only while it holds the row's lease (``holder`` until
``lease_until``), and every save is fenced by it: a replica whose lease
lapsed cannot move the position, so each entry goes out once per destination
except for a batch that was in flight at the handover.
"""

from __future__ import annotations

import dataclasses
import re
import sqlite3
from dataclasses import dataclass

import asyncpg

from botmon.runtime.store import SqliteDatabase, StoreLocation, close_pool

__all__ = ["Ledger", "State"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS export_destinations (
    name TEXT PRIMARY KEY,
    position BIGINT NOT NULL DEFAULT 0,
    sent BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    skipped BIGINT NOT NULL DEFAULT 0,
    metrics_sent BIGINT NOT NULL DEFAULT 0,
    metrics_failed BIGINT NOT NULL DEFAULT 0,
    backlog BIGINT NOT NULL DEFAULT 0,
    lag DOUBLE PRECISION NOT NULL DEFAULT 0,
    last_success DOUBLE PRECISION,
    failing_since DOUBLE PRECISION,
    last_error TEXT NOT NULL DEFAULT '',
    holder TEXT NOT NULL DEFAULT '',
    lease_until DOUBLE PRECISION NOT NULL DEFAULT 0
)
"""

_FIGURES = ("position", "sent", "failed", "skipped", "metrics_sent", "metrics_failed", "backlog",
            "lag", "last_success", "failing_since", "last_error")


@dataclass
class State:
    """A destination's delivery state; times are Unix seconds."""

    name: str
    position: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    metrics_sent: int = 0
    metrics_failed: int = 0
    backlog: int = 0
    lag: float = 0.0
    last_success: float | None = None
    failing_since: float | None = None
    last_error: str = ""
    holder: str = ""

    def copy(self) -> State:
        return dataclasses.replace(self)


def _numbered(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1, $2, …``."""
    counter = iter(range(1, 1000))
    return re.sub(r"\?", lambda _: f"${next(counter)}", sql)


class Ledger:
    """The ``export_destinations`` table in SQLite or PostgreSQL."""

    def __init__(self, store_url: str, timeout: float):
        location = StoreLocation.parse(store_url)
        self.kind = location.kind
        self.timeout = timeout
        self._dsn = location.dsn
        self._sqlite = SqliteDatabase(location.path) if location.kind == "sqlite" else None
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        if self._sqlite is not None:
            await self._sqlite.run(lambda conn: conn.execute(SCHEMA))
            return
        self._pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=4,
                                               timeout=self.timeout)
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('botmon.export.schema'))")
            await conn.execute(SCHEMA)

    async def close(self) -> None:
        if self._sqlite is not None:
            await self._sqlite.close()
        if self._pool is not None:
            await close_pool(self._pool)

    async def _execute(self, sql: str, *params) -> int:
        """Run one statement; the rows it changed."""
        if self._sqlite is not None:
            return await self._sqlite.run(lambda conn: conn.execute(sql, params).rowcount)
        status = await self._pool.execute(_numbered(sql), *params, timeout=self.timeout)
        return int(status.rsplit(" ", 1)[-1])

    async def _rows(self, sql: str, *params) -> list:
        if self._sqlite is not None:
            def read(conn: sqlite3.Connection) -> list:
                return conn.execute(sql, params).fetchall()
            return await self._sqlite.run(read)
        return await self._pool.fetch(_numbered(sql), *params, timeout=self.timeout)

    async def ensure(self, name: str) -> None:
        await self._execute("INSERT INTO export_destinations (name) VALUES (?) "
                            "ON CONFLICT (name) DO NOTHING", name)

    async def acquire(self, name: str, holder: str, ttl: float, now: float) -> bool:
        """Take or renew the lease on ``name``; True while ``holder`` holds it."""
        return await self._execute(
            "UPDATE export_destinations SET holder = ?, lease_until = ? "
            "WHERE name = ? AND (holder = ? OR lease_until < ?)",
            holder, now + ttl, name, holder, now) == 1

    async def release(self, name: str, holder: str) -> None:
        await self._execute("UPDATE export_destinations SET lease_until = 0 "
                            "WHERE name = ? AND holder = ?", name, holder)

    async def states(self, names: list[str] | None = None) -> list[State]:
        rows = await self._rows(f"SELECT name, {', '.join(_FIGURES)}, holder, lease_until "
                                "FROM export_destinations ORDER BY name")
        out = []
        for row in rows:
            if names is not None and row[0] not in names:
                continue
            out.append(State(row[0], *[row[i + 1] for i in range(len(_FIGURES))],
                             holder=row[len(_FIGURES) + 1]))
        return out

    async def load(self, name: str) -> State:
        found = await self.states([name])
        return found[0] if found else State(name)

    async def save(self, state: State, holder: str, now: float) -> bool:
        """Write ``state`` if ``holder`` still holds the lease; False when it does not."""
        assignments = ", ".join(f"{f} = ?" for f in _FIGURES)
        return await self._execute(
            f"UPDATE export_destinations SET {assignments} "
            "WHERE name = ? AND holder = ? AND lease_until >= ?",
            *(getattr(state, f) for f in _FIGURES), state.name, holder, now) == 1
