"""``POST /logs`` (JSON, parsed by the service: WriteLogsHttp) and gRPC ``WriteLogs`` apply
one set of rules: the same batch stores the same entries, and every refusal reads the same.

These fail if the two paths diverge: if one maps a level, trims a service, reads a
number in metadata or a timestamp differently, or refuses what the other keeps.
"""

from __future__ import annotations

import json
import time
from typing import Any

import grpc
import httpx
import pytest

from botmon.logs.v1 import log_entry_pb2, logs_service_pb2, logs_service_pb2_grpc
from tests.conftest import suite_channel, timestamp_message
from tests.harness import Suite
from tests.logs.support import now

T = int(now()) - 600


def _deep(levels: int) -> dict:
    value: Any = "leaf"
    for _ in range(levels - 1):
        value = {"a": value}
    return {"a": value}


#: Entries as a REST client writes them; every kind of value the rules read or map.
BATCH: list[dict[str, Any]] = [
    {"timestamp": f"{T}", "level": "info", "service": "web", "message": "plain",
     "metadata": {"request_id": "req_1", "user_id": "u1"}},
    {"timestamp": T + 0.25, "level": "WARNING", "service": "  padded  ", "message": "aliased"},
    # RFC 3339 with nine digits, recent: the store's retention would remove an older line
    # while the test runs.
    {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.123456789Z", time.gmtime(T + 0.5)),
     "level": "syslog:3", "service": "db",
     "message": "Verbindung unterbrochen – erneuter Versuch"},
    {"timestamp": T + 1, "level": "17", "service": "otel", "message": "numeric level",
     "metadata": {"n": 150, "ratio": 0.5, "whole": 2.0, "big": 2**60, "ok": True,
                  "none": None, "list": [1, "two", 3.5, [4]], "nested": {"k": {"v": 1}}}},
    {"timestamp": T + 2, "level": "debug", "service": "web", "message": "empty metadata",
     "metadata": {}},
    # Refused entries, each for its own rule.
    {"timestamp": T, "level": "loud", "service": "web", "message": "bad level"},
    {"timestamp": T, "level": "info", "service": " ", "message": "no service"},
    {"timestamp": T, "level": "info", "service": "s" * 129, "message": "long service"},
    {"timestamp": T, "level": "info", "service": "web", "message": ""},
    {"timestamp": T, "level": "info", "service": "web", "message": "x" * (32 * 1024 + 1)},
    {"timestamp": 946684799, "level": "info", "service": "web", "message": "before 2000"},
    {"timestamp": T + 3 * 86400, "level": "info", "service": "web", "message": "future"},
    {"timestamp": T, "level": "info", "service": "web", "message": "deep",
     "metadata": _deep(21)},
    {"timestamp": T, "level": "info", "service": "web", "message": "large",
     "metadata": {"blob": "x" * (16 * 1024)}},
    {"level": "", "service": "web", "message": "no level"},
]


def _proto(entry: dict[str, Any]) -> log_entry_pb2.LogEntry:
    """The same entry as a gRPC client builds it."""
    message = log_entry_pb2.LogEntry(level=entry["level"], service=entry["service"],
                                     message=entry["message"])
    if entry.get("timestamp") is not None:
        message.timestamp.CopyFrom(timestamp_message(entry["timestamp"]))
    if "metadata" in entry:
        message.metadata.update(entry["metadata"])
    return message


@pytest.fixture
async def suite(make_settings, store_url):
    async with Suite(make_settings(store_url=store_url), components=("logs",)) as running:
        yield running


@pytest.fixture
async def http():
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


@pytest.fixture
async def stub(suite):
    async with suite_channel(f"127.0.0.1:{suite.ports['logs']}", suite.settings) as channel:
        yield logs_service_pb2_grpc.LogsServiceStub(channel)


async def _rest(http, suite, body: Any) -> httpx.Response:
    return await http.post(f"{suite.base}/logs", json=body, headers=suite.headers("operator"))


def _stored(entries) -> list[tuple]:
    # Metadata as canonical JSON text, not as Python values: 2 == 2.0 in Python, and the
    # paths must store the same numbers (an integer where a Struct would show one).
    return [(e.time_unix_nano, e.level, e.service, e.message,
             json.dumps(json.loads(e.metadata_json), sort_keys=True) if e.metadata_json
             else None) for e in entries]


async def test_the_same_batch_stores_the_same_entries_both_ways(suite, http, stub):
    reply = await _rest(http, suite, {"logs": BATCH})
    assert reply.status_code == 202, reply.text
    high = (await stub.ReadLogsAfter(logs_service_pb2.ReadLogsAfterRequest(), timeout=10)
            ).high_id
    written = await stub.WriteLogs(logs_service_pb2.WriteLogsRequest(
        logs=[_proto(e) for e in BATCH]), timeout=10)
    rows = (await stub.ReadLogsAfter(logs_service_pb2.ReadLogsAfterRequest(page_size=100),
                                     timeout=10)).entries
    # Only this test's entries: the suite may log into its own store meanwhile.
    ours = [e for e in rows if e.service in {"web", "padded", "db", "otel"}]
    by_rest = _stored(e for e in ours if e.id <= high)
    by_grpc = _stored(e for e in ours if e.id > high)
    assert len(by_rest) == 5 and by_rest == by_grpc
    assert by_rest[1][2] == "padded" and by_rest[1][1] == "warn"
    assert by_rest[2][0] % 10**9 == 123456789
    numbers = json.loads(by_rest[3][4])
    assert numbers["n"] == 150 and numbers["whole"] == 2
    assert reply.json()["accepted"] == written.accepted == 5
    rest_errors = [(e["index"], e["message"]) for e in reply.json()["errors"]]
    assert rest_errors == [(e.index, e.message) for e in written.errors]
    assert [i for i, _ in rest_errors] == list(range(5, len(BATCH)))


@pytest.mark.parametrize("entries", [
    [],
    [{"level": "info", "service": "web", "message": "m"}] * 10_001,
    [{"level": "loud", "service": "web", "message": "m"}],
    [{"level": "info", "service": "", "message": "m"}],
    [{"timestamp": 1, "level": "info", "service": "web", "message": "m"}],
    [{"level": "info", "service": "web", "message": "m", "metadata": _deep(25)}],
    [{"level": "info", "service": "web", "message": "é" * 20_000}],
], ids=["empty", "too-many", "level", "service", "timestamp", "metadata-depth",
        "message-size"])
async def test_each_refusal_reads_the_same_both_ways(suite, http, stub, entries):
    reply = await _rest(http, suite, {"logs": entries})
    assert reply.status_code == 400, reply.text
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.WriteLogs(logs_service_pb2.WriteLogsRequest(
            logs=[_proto(e) for e in entries]), timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    error = reply.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["message"] == refused.value.details()
    listed = await stub.ListLogs(logs_service_pb2.ListLogsRequest(limit=1), timeout=10)
    assert listed.total == 0
