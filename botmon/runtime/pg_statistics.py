"""Planner statistics kept in step with a PostgreSQL table that fills fast.

asyncpg prepares each statement once per connection, and PostgreSQL soon settles on a
generic plan for it, made with the table's statistics of that moment and kept until
the table is analyzed again. A table that fills from empty after the suite starts
therefore keeps the plans of its first rows: under the mixed load, `GET /logs` joined
its page to ``logs_entries`` through a hash of a sequential scan of the whole table
(4,628 buffers and 35 ms at 300,000 entries, 195 ms from disk) where the plan made after
an ``ANALYZE`` reads 428 buffers in 0.2 ms (the README has both ``EXPLAIN (ANALYZE,
BUFFERS)``). Autovacuum analyzes at its own pace, a minute apart at best and later on a
busy server, and had not in that benchmark's two minutes.

:class:`Growth` analyzes the table itself each time it has doubled since the last
``ANALYZE`` (counted by what this process inserted), and at start when it never was:
a logarithmic number of analyses, each a sample of at most 30,000 rows, that takes no
lock inserts or reads wait for.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

__all__ = ["Growth"]

log = logging.getLogger("botmon.runtime.pg_statistics")

#: Rows added before a table analyzed empty (or never) is analyzed again.
FIRST = 1000


class Growth:
    """``ANALYZE`` of ``table`` each time it has doubled; ``added(rows)`` after each insert."""

    def __init__(self, pool: asyncpg.Pool, table: str, *, first: int = FIRST):
        self.pool = pool
        self.table = table
        self.first = first
        self._added = 0
        self._next = first
        self._task: asyncio.Task | None = None

    async def prime(self, conn: asyncpg.Connection) -> None:
        """At start: analyze a table that never was (in the background, as a large one takes
        a while); otherwise wait for it to double."""
        rows = await self._rows(conn)
        if rows < 0 and await conn.fetchval(f"SELECT EXISTS (SELECT FROM {self.table})"):
            self._start()
        else:
            self._next = max(self.first, rows)

    def added(self, rows: int) -> None:
        self._added += rows
        if self._added >= self._next:
            self._start()

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._in_background(),
                                             name=f"analyze-{self.table}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _in_background(self) -> None:
        try:
            async with self.pool.acquire() as conn:
                await conn.execute(f"ANALYZE {self.table}")
                self._added = 0
                self._next = max(self.first, await self._rows(conn))
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
            # The next insert tries again; plans stay as they were meanwhile.
            log.warning("could not analyze %s: %s", self.table, exc)

    async def _rows(self, conn: asyncpg.Connection) -> int:
        """The planner's row count of the table: -1 if it was never analyzed or vacuumed."""
        return int(await conn.fetchval("SELECT reltuples FROM pg_class WHERE oid = $1::regclass",
                                       self.table))
