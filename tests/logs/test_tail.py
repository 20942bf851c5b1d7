"""Live tail over gRPC: filters, slow readers, and fan-out across replicas through Redis."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import pytest

from botmon.logs.v1 import logs_service_pb2 as pb
from botmon.logs.v1 import logs_service_pb2_grpc
from services.logs.__main__ import create_server
from services.logs.config import LogsSettings
from tests.conftest import free_port, suite_channel
from tests.logs.support import Logs, entry


class Tail:
    """A TailLogs call read by a background task, so waits can time out without cancelling it."""

    def __init__(self, stub, **filters):
        self.call = stub.TailLogs(pb.TailLogsRequest(**filters), timeout=60)
        self.messages: asyncio.Queue = asyncio.Queue()
        self.task = asyncio.create_task(self._pump())

    async def _pump(self):
        async for message in self.call:
            await self.messages.put(message)

    async def confirmed(self) -> Tail:
        """Wait for the empty first message that confirms the subscription."""
        first = await asyncio.wait_for(self.messages.get(), 10)
        assert not first.logs and first.dropped == 0
        return self

    async def next(self, seconds: float):
        return await asyncio.wait_for(self.messages.get(), seconds)

    async def read(self, count: int) -> tuple[list, int]:
        """Read until ``count`` entries arrived or were dropped; returns (entries, dropped)."""
        got, dropped = [], 0
        async with asyncio.timeout(10):
            while len(got) + dropped < count:
                message = await self.messages.get()
                got.extend(message.logs)
                dropped = message.dropped
        return got, dropped

    async def quiet(self) -> None:
        """Drain what is in flight until nothing arrives for a moment."""
        with contextlib.suppress(TimeoutError):
            while True:
                await self.next(0.3)

    async def close(self) -> None:
        self.call.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def test_tail_streams_new_matching_entries(logs):
    await logs.write([entry("error", "api", "before the tail")])
    tail = await Tail(logs.stub, level="warn", service="api", q="disk FULL",
                      metadata={"host": "h1"}).confirmed()
    try:
        await logs.write([
            entry("error", "api", "disk full on /var", metadata={"host": "h1"}),
            entry("info", "api", "disk full", metadata={"host": "h1"}),       # level too low
            entry("error", "db", "disk full", metadata={"host": "h1"}),       # other service
            entry("error", "api", "disk ok", metadata={"host": "h1"}),        # words missing
            entry("error", "api", "disk full", metadata={"host": "h2"}),      # metadata differs
            entry("warn", "api", "Disk is FULL again", metadata={"host": "h1", "n": 2}),
        ])
        got, dropped = await tail.read(2)
        assert [e.message for e in got] == ["disk full on /var", "Disk is FULL again"]
        assert got[1].metadata["n"] == 2 and got[0].id > 0 and dropped == 0
    finally:
        await tail.close()


async def test_bad_tail_filters_are_refused(logs):
    call = logs.stub.TailLogs(pb.TailLogsRequest(level="loud"), timeout=10)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call.read()
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "level 'loud' is not a level" in info.value.details()


@pytest.fixture
def logs_settings() -> LogsSettings:
    return LogsSettings(retention_interval=3600.0, tail_buffer=5)


async def test_a_slow_tail_loses_oldest_entries_counted_and_never_blocks_ingest(logs):
    tail = await Tail(logs.stub).confirmed()
    try:
        # ~2 MB of entries while the tail reads nothing: gRPC's flow-control window
        # fills, the tail's buffer (5) overflows, and every write still completes.
        written = 0
        async with asyncio.timeout(30):
            for batch in range(20):
                reply = await logs.write([entry(message=f"b{batch} {i} " + "x" * 1000)
                                          for i in range(100)])
                written += reply.accepted
        got, dropped = await tail.read(written)
        assert dropped > 0 and len(got) + dropped == written
        assert got[-1].message.startswith("b19 99 ")  # the newest are kept
    finally:
        await tail.close()


async def _replica(settings, logs_settings):
    server = await create_server(settings, address="127.0.0.1:0", logs_settings=logs_settings)
    await server.start()
    channel = suite_channel(f"127.0.0.1:{server.port}", settings)
    return Logs(server, channel, logs_service_pb2_grpc.LogsServiceStub(channel))


@contextlib.asynccontextmanager
async def _replicas(settings, count=2):
    logs_settings = LogsSettings(retention_interval=3600.0)
    replicas = [await _replica(settings, logs_settings) for _ in range(count)]
    try:
        yield replicas
    finally:
        for replica in replicas:
            await replica.channel.close()
            await replica.server.stop(0)


async def test_tails_see_entries_written_on_other_replicas(make_settings, postgres_url,
                                                           redis_url):
    settings = make_settings(store_url=postgres_url, redis_url=redis_url,
                             health_target="127.0.0.1:9", metrics_target="127.0.0.1:9")
    async with _replicas(settings) as (a, b):
        tail = await Tail(b.stub, service="api").confirmed()
        try:
            # B subscribes and announces itself; wait until A's entries reach B.
            async with asyncio.timeout(10):
                while True:
                    await a.write([entry(service="api", message="probe")])
                    try:
                        message = await tail.next(0.5)
                    except TimeoutError:
                        continue
                    if message.logs:
                        break
            await tail.quiet()
            await a.write([entry(service="api", message=f"from a {i}") for i in range(3)])
            await b.write([entry(service="api", message="from b")])
            await a.write([entry(service="db", message="other service")])
            got, _ = await tail.read(4)
            assert sorted(e.message for e in got) == ["from a 0", "from a 1", "from a 2",
                                                      "from b"]
            assert b.server.details()["tail_fanout"] == "connected"
        finally:
            await tail.close()


async def test_tails_work_per_replica_when_redis_is_down(make_settings, tmp_path):
    settings = make_settings(redis_url=f"redis://127.0.0.1:{free_port()}",
                             health_target="127.0.0.1:9", metrics_target="127.0.0.1:9",
                             grpc_deadline=0.5)
    async with _replicas(settings, count=1) as (a,):
        tail = await Tail(a.stub).confirmed()
        try:
            await a.write([entry(message="still tailed")])
            got, _ = await tail.read(1)
            assert got[0].message == "still tailed"
            for _ in range(100):
                if a.server.details()["tail_fanout"] == "degraded":
                    break
                await asyncio.sleep(0.05)
            assert a.server.details()["tail_fanout"] == "degraded"
        finally:
            await tail.close()
