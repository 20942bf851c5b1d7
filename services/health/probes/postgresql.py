"""PostgreSQL probe: latency of ``SELECT 1`` and connection figures from ``pg_stat_activity``."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from botmon.runtime.errors import Unavailable
from botmon.runtime.store import close_pool
from services.health.probes.probe import describe, elapsed_ms, url_port
from services.health.probes.resources import DatabaseResources
from services.health.probes.result import DEGRADED, HEALTHY, DatabaseResult

__all__ = ["APPLICATION_NAME", "PostgresProbe"]

#: The probe's own connections carry this name and are left out of the figures, so
#: that watching the database does not show up as load on it.
APPLICATION_NAME = "botmon-health"

# Connections of the probed database only (its pool, in the API document's terms);
# max_connections and the saturation check are server-wide, as the server enforces them.
_ACTIVITY = """
SELECT current_setting('max_connections')::int AS max_connections,
       current_setting('server_version') AS server_version,
       extract(epoch FROM pg_postmaster_start_time())::float8 AS started_at,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')
           AS server_connections,
       count(*) FILTER (WHERE state = 'active') AS active,
       count(*) FILTER (WHERE state LIKE 'idle%') AS idle,
       count(*) FILTER (WHERE wait_event_type = 'Lock') AS waiting,
       count(*) FILTER (WHERE state = 'active' AND clock_timestamp() - query_start
                        > make_interval(secs => $1::float8 / 1000)) AS slow,
       coalesce(avg(extract(epoch FROM clock_timestamp() - query_start) * 1000)
                FILTER (WHERE state = 'active'), 0)::float8 AS average_ms
  FROM pg_stat_activity
 WHERE datname = current_database()
   AND backend_type = 'client backend'
   AND application_name <> $2
"""

# pg has no counter of closed connections. `sessions` (PostgreSQL 14+) counts the
# sessions opened to this database since its statistics were reset; those no longer
# connected (sessions - numbackends) have closed.
_SESSIONS = """
SELECT sessions, numbackends FROM pg_stat_database WHERE datname = current_database()
"""

#: Share of max_connections in use above which the database is degraded.
SATURATION = 0.9


class PostgresProbe:
    """Probes one PostgreSQL database over a small pool of its own."""

    result_type = DatabaseResult

    def __init__(self, dsn: str, *, timeout: float, slow_query_ms: float):
        self.dsn = dsn
        self.timeout = timeout
        self.slow_query_ms = slow_query_ms
        self.port = url_port(dsn, 5432)
        self._pool: asyncpg.Pool | None = None

    async def _connection_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            # min_size=0: creating the pool connects nowhere, so a down server fails
            # the probe (with its reason) instead of the service's start.
            self._pool = await asyncpg.create_pool(
                self.dsn, min_size=0, max_size=2, timeout=self.timeout,
                command_timeout=self.timeout, max_inactive_connection_lifetime=60,
                server_settings={"application_name": APPLICATION_NAME})
        return self._pool

    async def check(self) -> DatabaseResult:
        pool = await self._connection_pool()
        async with pool.acquire(timeout=self.timeout) as conn:
            start = time.perf_counter()
            await conn.fetchval("SELECT 1")
            latency = elapsed_ms(start)
            row = await conn.fetchrow(_ACTIVITY, self.slow_query_ms, APPLICATION_NAME)
        status, reason = HEALTHY, ""
        if row["server_connections"] >= SATURATION * row["max_connections"]:
            status = DEGRADED
            reason = (f"{row['server_connections']} of {row['max_connections']} connections "
                      "in use")
        return DatabaseResult(
            status=status, reason=reason, latency_ms=latency, port=self.port,
            version=row["server_version"].split()[0], started_at=row["started_at"],
            backend="postgresql", active=row["active"], idle=row["idle"],
            max=row["max_connections"])

    async def resources(self) -> DatabaseResources:
        """Pool and query figures, read now; Unavailable when the database does not answer."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self._resources()
        except TimeoutError:
            raise Unavailable(f"database did not answer within {self.timeout:g}s") from None
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise Unavailable(f"database unreachable: {describe(exc)}") from None

    async def _resources(self) -> DatabaseResources:
        pool = await self._connection_pool()
        async with pool.acquire(timeout=self.timeout) as conn:
            row = await conn.fetchrow(_ACTIVITY, self.slow_query_ms, APPLICATION_NAME)
            created = closed = 0
            if conn.get_server_version().major >= 14:
                sessions = await conn.fetchrow(_SESSIONS)
                created = sessions["sessions"]
                # Statistics are flushed lazily, so a just-opened session may be
                # connected before it is counted.
                closed = max(0, sessions["sessions"] - sessions["numbackends"])
        return DatabaseResources(
            backend="postgresql", max_connections=row["max_connections"],
            active_connections=row["active"], idle_connections=row["idle"],
            waiting_requests=row["waiting"], total_created=created, total_closed=closed,
            active_queries=row["active"], slow_queries=row["slow"],
            average_duration_ms=round(row["average_ms"], 3))

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await close_pool(pool, self.timeout)
