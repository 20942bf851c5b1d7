"""SQLite probe: the embedded store, read for real on its own connection."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from botmon.runtime.datadir import private_file
from botmon.runtime.errors import Unavailable
from services.health.probes.probe import describe, elapsed_ms
from services.health.probes.resources import DatabaseResources
from services.health.probes.result import HEALTHY, DatabaseResult

__all__ = ["SqliteProbe"]


class SqliteProbe:
    """Probes a SQLite file with one connection on one worker thread.

    SQLite has no server, so its "pool" is that single connection: max 1, and it
    is idle whenever the probe is not running a statement. ``create`` is set for
    the suite's own store, which any service may be the first to create.
    """

    port = 0
    result_type = DatabaseResult

    def __init__(self, path: Path, *, timeout: float, create: bool):
        self.path = path
        self.timeout = timeout
        self.create = create
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="health-sqlite")
        self._conn: sqlite3.Connection | None = None
        self.opened = 0
        self.closed = 0

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            if self.create:
                private_file(self.path)
            mode = "rwc" if self.create else "ro"
            self._conn = sqlite3.connect(f"file:{self.path}?mode={mode}", uri=True,
                                         timeout=self.timeout, check_same_thread=False)
            self.opened += 1
        return self._conn

    def _query(self) -> float:
        try:
            start = time.perf_counter()
            self._connection().execute("SELECT count(*) FROM sqlite_master").fetchone()
            return elapsed_ms(start)
        except sqlite3.Error:
            self._drop()
            raise

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
            self.closed += 1

    async def _run(self, fn):
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def check(self) -> DatabaseResult:
        latency = await self._run(self._query)
        return DatabaseResult(status=HEALTHY, latency_ms=latency, version=sqlite3.sqlite_version,
                              backend="sqlite", active=0, idle=1, max=1)

    async def resources(self) -> DatabaseResources:
        """The figures of the probe's single connection; Unavailable when the file cannot be read."""
        try:
            async with asyncio.timeout(self.timeout):
                await self._run(self._query)
        except TimeoutError:
            raise Unavailable(f"SQLite store did not answer within {self.timeout:g}s") from None
        except sqlite3.Error as exc:
            raise Unavailable(f"SQLite store {self.path} unreadable: {describe(exc)}") from None
        return DatabaseResources(backend="sqlite", max_connections=1, active_connections=0,
                                 idle_connections=1, waiting_requests=0,
                                 total_created=self.opened, total_closed=self.closed)

    async def close(self) -> None:
        await self._run(self._drop)
        self._executor.shutdown(wait=False)
