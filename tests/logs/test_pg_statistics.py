"""On PostgreSQL the logs service analyzes its entries as they double, so the plans that
asyncpg's prepared statements keep are remade for the table's size (not its first rows')."""

from __future__ import annotations

import asyncpg
import pytest

from services.logs.__main__ import create_server
from tests.conftest import free_port
from tests.logs.conftest import QUIET
from tests.logs.support import entry
from tests.waiting import eventually

pytestmark = pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)


async def _connect(url: str) -> asyncpg.Connection:
    """A connection to the test's database, with autovacuum kept off the entries so that
    every analysis counted is the service's."""
    conn = await asyncpg.connect(url)
    await conn.execute("ALTER TABLE logs_entries SET (autovacuum_enabled = false)")
    return conn


async def _analyzed(conn: asyncpg.Connection) -> tuple[int, float]:
    """(ANALYZEs run on logs_entries other than autovacuum's, the planner's row count)."""
    row = await conn.fetchrow(
        "SELECT s.analyze_count, c.reltuples FROM pg_stat_user_tables s "
        "JOIN pg_class c ON c.oid = s.relid WHERE s.relname = 'logs_entries'")
    return row[0], row[1]


async def test_the_entries_are_analyzed_each_time_they_double(logs, postgres_url):
    conn = await _connect(postgres_url)
    try:
        # Empty at start: nothing to analyze yet.
        assert (await _analyzed(conn))[0] == 0
        await logs.write([entry(message=f"first {i}") for i in range(600)])
        assert (await _analyzed(conn))[0] == 0

        await logs.write([entry(message=f"second {i}") for i in range(600)])
        count, rows = await eventually(
            lambda: _first_at_least(conn, 1), within=10, interval=0.1)
        assert rows == 1200

        # Analyzed at 1,200 rows: not again before 1,200 more.
        await logs.write([entry(message=f"third {i}") for i in range(1000)])
        assert (await _analyzed(conn))[0] == count
        await logs.write([entry(message=f"fourth {i}") for i in range(300)])
        _, rows = await eventually(lambda: _first_at_least(conn, count + 1), within=10,
                                   interval=0.1)
        assert rows == 2500
    finally:
        await conn.close()


async def _first_at_least(conn: asyncpg.Connection, count: int):
    analyzed = await _analyzed(conn)
    return analyzed if analyzed[0] >= count else None


async def test_a_filled_table_never_analyzed_is_analyzed_at_start(logs, postgres_url,
                                                                   make_settings):
    conn = await _connect(postgres_url)
    try:
        await logs.write([entry(message=f"before {i}") for i in range(300)])
        assert await _analyzed(conn) == (0, -1)  # under the first threshold: never analyzed
        # A replica (or a restart) opening the store finds it filled and never analyzed.
        settings = make_settings(store_url=postgres_url, health_target="127.0.0.1:9",
                                 metrics_target="127.0.0.1:9", grpc_deadline=2.0)
        second = await create_server(settings, address=f"127.0.0.1:{free_port()}",
                                     logs_settings=QUIET)
        async with second:
            assert await eventually(lambda: _first_at_least(conn, 1), within=10,
                                    interval=0.1) == (1, 300)
    finally:
        await conn.close()
