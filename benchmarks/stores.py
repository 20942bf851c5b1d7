"""Scratch stores on the machine's servers: a throwaway PostgreSQL database, a Redis db.

PostgreSQL: ``BOTMON_BENCH_DATABASE_URL`` (else ``BOTMON_TEST_DATABASE_URL``, else
postgresql://postgres@127.0.0.1:5432/postgres) is the maintenance database to
create and drop in. Redis: ``BOTMON_BENCH_REDIS_URL`` (else
redis://127.0.0.1:6379/14), a database number of its own, flushed before and after.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Iterator

import asyncpg
import redis

__all__ = ["backend_pids", "redis_server_pid", "scratch_database", "scratch_redis"]

_TIMEOUT = 10.0


def _admin_url() -> str:
    return (os.environ.get("BOTMON_BENCH_DATABASE_URL")
            or os.environ.get("BOTMON_TEST_DATABASE_URL")
            or "postgresql://postgres@127.0.0.1:5432/postgres")


async def _execute(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url, timeout=_TIMEOUT)
    try:
        await conn.execute(sql, timeout=_TIMEOUT)
    finally:
        await conn.close(timeout=_TIMEOUT)


@contextlib.contextmanager
def scratch_database(prefix: str = "botmon_bench") -> Iterator[str]:
    """The URL of a new, empty database; dropped (connections and all) on exit."""
    admin = _admin_url()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    asyncio.run(_execute(admin, f'CREATE DATABASE "{name}"'))
    try:
        yield f"{admin.rpartition('/')[0]}/{name}"
    finally:
        asyncio.run(_execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def backend_pids(url: str) -> list[int]:
    """Process ids of the server backends connected to ``url``'s database (not this query's)."""
    async def query() -> list[int]:
        conn = await asyncpg.connect(url, timeout=_TIMEOUT)
        try:
            rows = await conn.fetch("SELECT pid FROM pg_stat_activity "
                                    "WHERE datname = current_database() "
                                    "AND pid <> pg_backend_pid()", timeout=_TIMEOUT)
        finally:
            await conn.close(timeout=_TIMEOUT)
        return [row["pid"] for row in rows]

    return asyncio.run(query())


@contextlib.contextmanager
def scratch_redis() -> Iterator[str]:
    """The URL of a Redis database flushed now and again on exit."""
    url = os.environ.get("BOTMON_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
    client = redis.Redis.from_url(url, socket_timeout=_TIMEOUT, socket_connect_timeout=_TIMEOUT)
    try:
        client.flushdb()
        yield url
    finally:
        client.flushdb()
        client.close()


def redis_server_pid(url: str) -> int:
    """The server's process id, from ``INFO server``."""
    client = redis.Redis.from_url(url, socket_timeout=_TIMEOUT, socket_connect_timeout=_TIMEOUT)
    try:
        return int(client.info("server")["process_id"])
    finally:
        client.close()
