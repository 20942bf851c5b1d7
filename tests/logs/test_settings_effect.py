"""The logs service's store and commit settings take effect (each one changes what is observed)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from botmon.logs.v1 import logs_service_pb2 as pb
from botmon.logs.v1 import logs_service_pb2_grpc
from services.logs.__main__ import create_server
from tests.conftest import suite_channel
from tests.logs.conftest import QUIET
from tests.logs.support import Logs, entry


async def _serve(make_settings, store_url: str, **changes):
    settings = make_settings(store_url=store_url, health_target="127.0.0.1:9",
                             metrics_target="127.0.0.1:9", grpc_deadline=5.0)
    return await create_server(settings, address="127.0.0.1:0",
                               logs_settings=dataclasses.replace(QUIET, **changes))


async def _burst(server, calls: int, *, write: bool) -> None:
    async with suite_channel(f"127.0.0.1:{server.port}", server.settings) as channel:
        logs = Logs(server, channel, logs_service_pb2_grpc.LogsServiceStub(channel))
        await asyncio.gather(*(logs.write([entry(message=f"m{i}")]) if write
                               else logs.list(limit=10, q=f"m{i}") for i in range(calls)))


def _open_files(path: Path) -> int:
    """How many file descriptors of this process have ``path`` open."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") == str(path)
        except OSError:
            continue
    return count


async def test_commit_max_rows_bounds_each_group_commit(make_settings, tmp_path):
    commits = {}
    for max_rows in (1, 50_000):
        server = await _serve(make_settings, f"sqlite:///{tmp_path / f'{max_rows}.db'}",
                              commit_max_rows=max_rows)
        async with server:
            await _burst(server, 200, write=True)
            details = server.details()
            commits[max_rows] = (details["commits"], details["committed_entries"])
    assert commits[1] == (200, 200), "with BOTMON_LOG_COMMIT_MAX_ROWS=1 every entry commits alone"
    assert commits[50_000][1] == 200 and commits[50_000][0] < 200, "concurrent batches merge"


async def test_sqlite_readers_is_the_number_of_read_connections(make_settings, tmp_path):
    opened = {}
    for readers in (1, 4):
        path = tmp_path / f"readers-{readers}.db"
        server = await _serve(make_settings, f"sqlite:///{path}", sqlite_readers=readers)
        async with server:
            await _burst(server, 20, write=False)
            opened[readers] = _open_files(path)
    assert opened[4] - opened[1] == 3


async def _connections(url: str) -> int:
    database = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = $1 "
                                   "AND pid <> pg_backend_pid()", database)
    finally:
        await conn.close()


@pytest.mark.parametrize("pool", [1, 3])
async def test_pg_pool_caps_the_connections_of_a_replica(make_settings, postgres_url, pool):
    server = await _serve(make_settings, postgres_url, postgres_pool_size=pool)
    async with server:
        await _burst(server, 30, write=False)
        connections = await _connections(postgres_url)
    assert connections == pool if pool == 1 else 1 < connections <= pool


async def test_fanout_channel_names_the_redis_channel(make_settings, tmp_path, redis_url):
    settings = make_settings(store_url=f"sqlite:///{tmp_path / 'botmon.db'}", redis_url=redis_url,
                             health_target="127.0.0.1:9", metrics_target="127.0.0.1:9")
    server = await create_server(settings, address="127.0.0.1:0", logs_settings=dataclasses.replace(
        QUIET, fanout_channel="ops:log-tail"))
    client = aioredis.Redis.from_url(redis_url)
    try:
        async with server, suite_channel(f"127.0.0.1:{server.port}", settings) as channel:
            # A replica subscribes to the channel while it has a live tail.
            tail = logs_service_pb2_grpc.LogsServiceStub(channel).TailLogs(
                pb.TailLogsRequest(), timeout=30)

            async def subscribed() -> dict:
                return dict(await client.pubsub_numsub("ops:log-tail", "botmon:9:logs:tail"))
            counts = {}
            for _ in range(50):  # eventually, within a generous 10 s
                counts = await subscribed()
                if counts[b"ops:log-tail"]:
                    break
                await asyncio.sleep(0.2)
            assert counts == {b"ops:log-tail": 1, b"botmon:9:logs:tail": 0}
            tail.cancel()
    finally:
        await client.aclose()
