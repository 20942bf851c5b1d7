"""Writing entries over gRPC: validation, partial success, level mapping, streaming ingest."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from botmon.logs.v1 import logs_service_pb2 as pb
from tests.logs.support import entry, now


def _details(error: grpc.aio.AioRpcError) -> error_details_pb2.BadRequest:
    raw = dict(error.trailing_metadata())["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(raw)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert status.message == error.details()
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    return bad


async def test_written_entries_are_listed_as_written(logs):
    t = now() - 60
    reply = await logs.write([
        entry("info", "web_server", "Request processed successfully", t,
              {"request_id": "req_123", "user_id": "user_456", "duration_ms": 150,
               "nested": {"ok": True, "ratio": 0.25}, "tags": ["a", "b"]}),
        entry("error", "database", "Connection timeout", t + 1,
              {"query": "SELECT * FROM users", "timeout_ms": 5000}),
    ])
    assert reply.accepted == 2 and not reply.errors
    page = await logs.list()
    assert page.total == 2
    newest, oldest = page.logs
    assert (newest.level, newest.service, newest.message) == ("error", "database",
                                                              "Connection timeout")
    assert dict(newest.metadata) == {"query": "SELECT * FROM users", "timeout_ms": 5000}
    assert oldest.metadata["nested"]["ok"] is True
    assert list(oldest.metadata["tags"]) == ["a", "b"]
    assert abs(oldest.timestamp.ToNanoseconds() / 1e9 - t) < 1e-6
    assert newest.id > oldest.id > 0


async def test_timestamp_defaults_to_receipt(logs):
    before = now()
    await logs.write([entry(message="no time given")])
    (stored,) = (await logs.list()).logs
    assert before - 1 <= stored.timestamp.ToNanoseconds() / 1e9 <= now() + 1


@pytest.mark.parametrize(("given", "stored"), [
    ("debug", "debug"), ("TRACE", "debug"), ("info", "info"), ("notice", "info"),
    ("warn", "warn"), ("Warning", "warn"), ("error", "error"), ("fatal", "error"),
    ("critical", "error"), ("panic", "error"), (" err ", "error"),
    ("0", "error"), ("3", "error"), ("4", "warn"), ("5", "info"), ("6", "info"), ("7", "debug"),
    ("9", "info"), ("13", "warn"), ("17", "error"), ("24", "error"),
    ("otel:1", "debug"), ("otel:5", "debug"), ("otel:10", "info"), ("syslog:1", "error"),
    ("INFO2", "info"), ("WARN3", "warn"), ("ERROR4", "error"), ("FATAL", "error"),
    ("DEBUG2", "debug"),
])
async def test_levels_map_onto_the_four_stored_ones(logs, given, stored):
    await logs.write([entry(given, message=f"level {given}")])
    (listed,) = (await logs.list()).logs
    assert listed.level == stored


BAD_ENTRIES = [
    (entry(level=""), "level is required"),
    (entry(level="loud"), "'loud' is not a level"),
    (entry(level="25"), "is not a level"),
    (entry(level="otel:0"), "is not a level"),
    # Digits to str.isdigit() that int() refuses: a clear error, not a crash.
    (entry(level="\u00b3"), "is not a level"),
    (entry(level="otel:\u00b2"), "is not a level"),
    (entry(service=""), "service is required"),
    (entry(service="   "), "service is required"),
    (entry(service="s" * 129), "limit is 128"),
    (entry(message=""), "message is required"),
    (entry(message="x" * (32 * 1024 + 1)), "32 KiB"),
    (entry(message="é" * (16 * 1024 + 1)), "32 KiB"),  # 2 bytes per character in UTF-8
    (entry(metadata={"blob": "x" * (16 * 1024)}), "16 KiB"),
    (entry(metadata={"n": 1, "blob": "x" * (16 * 1024)}), "16 KiB"),
    (entry(ts=1_700_000_000_000), "milliseconds"),  # ms sent as seconds: year 55 000
    (entry(ts=100.0), "between 2000-01-01"),
    (entry(ts=0.0), "between 2000-01-01"),  # set to the epoch, not unset
    (entry(ts=now() + 3 * 86_400), "one day from now"),
]


@pytest.mark.parametrize(("bad", "says"), BAD_ENTRIES,
                         ids=[says for _, says in BAD_ENTRIES])
async def test_invalid_entries_are_reported_and_valid_ones_stored(logs, bad, says):
    reply = await logs.write([entry(message="first"), bad, entry(message="third")])
    assert reply.accepted == 2
    (error,) = reply.errors
    assert error.index == 1 and says in error.message
    assert sorted(e.message for e in (await logs.list()).logs) == ["first", "third"]


async def test_limits_are_inclusive(logs):
    reply = await logs.write([
        entry(message="x" * 32 * 1024),
        entry(service="s" * 128),
        entry(ts=now() + 3600),
    ])
    assert reply.accepted == 3, reply.errors


async def test_a_batch_without_a_valid_entry_is_refused_with_details(logs):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await logs.write([entry(level="loud"), entry(service="")])
    error = info.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "no entry was stored" in error.details()
    assert "logs[0]: level 'loud'" in error.details()
    assert "logs[1]: service is required" in error.details()
    violations = _details(error).field_violations
    assert [v.field for v in violations] == ["logs[0]", "logs[1]"]
    assert (await logs.list()).total == 0


@pytest.mark.parametrize(("count", "says"), [(0, "logs is empty"),
                                             (10_001, "at most 10000")])
async def test_batch_size_is_bounded(logs, count, says):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await logs.write([entry()] * count)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert says in info.value.details()


async def test_streaming_ingest_stores_every_batch_and_counts_rejections(logs):
    async def batches():
        for b in range(5):
            yield pb.IngestLogsRequest(logs=[entry(message=f"b{b} e{i}") for i in range(1000)]
                                       + [entry(level="nope", message=f"bad {b}")])

    reply = await logs.stub.IngestLogs(batches(), timeout=60)
    assert (reply.accepted, reply.rejected) == (5000, 5)
    assert [(e.batch, e.index) for e in reply.errors] == [(b, 1000) for b in range(5)]
    page = await logs.list(limit=1)
    assert page.total == 5000


async def test_streaming_ingest_refuses_an_oversized_batch_saying_what_was_stored(logs):
    async def batches():
        yield pb.IngestLogsRequest(logs=[entry(message="kept")] * 10)
        yield pb.IngestLogsRequest(logs=[entry()] * 10_001)

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await logs.stub.IngestLogs(batches(), timeout=60)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "batch 1 has 10001 entries" in info.value.details()
    assert "10 entries of earlier batches were stored" in info.value.details()
    assert (await logs.list()).total == 10


async def test_concurrent_writers_share_commits(logs):
    replies = await asyncio.gather(*(logs.write([entry(message=f"w{w} e{i}") for i in range(50)])
                                     for w in range(40)))
    assert sum(r.accepted for r in replies) == 2000
    assert (await logs.list(limit=1)).total == 2000
    details = logs.server.details()
    assert details["committed_entries"] == 2000
    assert details["commits"] < 40  # group commit: concurrent batches shared fsyncs
