"""The JSON form of a ListLogs page (LOG_PAGE_FORMAT_JSON, what GET /logs passes through)
against the messages form, over gRPC and REST, and across the two stores."""

from __future__ import annotations

import json
from contextlib import AsyncExitStack

import httpx
import orjson
import pytest
from google.protobuf import json_format

from botmon.logs.v1 import logs_service_pb2 as pb
from botmon.logs.v1 import logs_service_pb2_grpc
from services.logs.__main__ import create_server
from services.logs.row import ROW_OVERHEAD
from tests.conftest import suite_channel
from tests.harness import Suite
from tests.logs.conftest import QUIET
from tests.logs.support import Logs, entry, now, stamp

JSON, MESSAGES = pb.LOG_PAGE_FORMAT_JSON, pb.LOG_PAGE_FORMAT_MESSAGES
T0 = float(int(now()) - 3600)
METADATA = [
    None,
    {},
    {"request_id": "req_123", "user_id": "user_456", "duration_ms": 150},
    {"ünïcode": "ナノ秒 ✓ é", "emoji": "🚀", "quote": "\"\\\n\t/", "control": "\u0001\u001f"},
    {"nested": {"a": [1, 2.5, {"b": None, "c": [[]]}], "empty": {}, "list": []},
     "flag": True, "off": False, "none": None},
    {"whole": 2.0, "big": 2.0**60, "huge": 1e16, "tiny": 1e-7, "neg": -3, "frac": -0.25,
     "edge": 2.0**53, "below": 2.0**53 - 1},
    {"z": "last", "a": "first", "m": {"y": 1, "b": 2}},
]
#: Nanoseconds of the entries' times: whole seconds and 3, 6 and 9 digits of fraction.
NANOS = [0, 500_000_000, 123_000_000, 123_000, 123, 999_999_999]
QUERIES = [
    {},
    {"limit": 3},
    {"level": "warn", "limit": 4, "order": "asc"},
    {"q": "processed", "limit": 5},
    {"service": "api", "start_time": T0 + 5, "end_time": T0 + 40},
    {"metadata": {"user_id": "user_456"}},
    {"q": "nothing matches this"},
]


def _entries() -> list:
    levels = ("debug", "info", "warn", "error")
    entries = []
    for i in range(42):
        written = entry(level=levels[i % 4], service=("api", "db", "ünï")[i % 3],
                        message=f"request processed #{i} ✓" if i % 2 else f"line {i}",
                        ts=T0 + i, metadata=METADATA[i % len(METADATA)])
        written.timestamp.nanos = NANOS[i % len(NANOS)]
        entries.append(written)
    return entries


def _request(page_format: int, query: dict, cursor: str = "") -> pb.ListLogsRequest:
    fields = {k: stamp(v) if k.endswith("_time") else v for k, v in query.items()}
    return pb.ListLogsRequest(page_format=page_format, cursor=cursor, **fields)


async def _pages(stub, query: dict, page_format: int) -> list[pb.ListLogsResponse]:
    """Every page of ``query`` in ``page_format``, following cursors."""
    pages, cursor = [], ""
    while True:
        page = await stub.ListLogs(_request(page_format, query, cursor), timeout=30)
        pages.append(page)
        cursor = page.next_cursor if page_format == MESSAGES \
            else json.loads(page.body.data)["next_cursor"]
        if not cursor:
            return pages


def _same_as_messages(document: dict, messages: pb.ListLogsResponse) -> None:
    """``document`` holds what ``messages`` holds, field by field, in the JSON mapping."""
    assert list(document) == ["logs", "total", "query", "next_cursor"]
    assert document["total"] == messages.total
    assert document["next_cursor"] == messages.next_cursor
    assert len(document["logs"]) == len(messages.logs)
    for got, want in zip(document["logs"], messages.logs, strict=True):
        assert list(got) == ["timestamp", "level", "service", "message", "metadata", "id"]
        assert got["timestamp"] == want.timestamp.ToJsonString()
        assert (got["level"], got["service"], got["message"], got["id"]) == (
            want.level, want.service, want.message, want.id)
        if want.HasField("metadata"):
            assert got["metadata"] == json_format.MessageToDict(want.metadata)
            _numbers_as_struct(got["metadata"])
        else:
            assert got["metadata"] is None
    query = messages.query
    assert document["query"] == {
        "level": query.level, "limit": query.limit, "service": query.service, "q": query.q,
        "order": query.order,
        "start_time": query.start_time.ToJsonString() if query.HasField("start_time") else None,
        "end_time": query.end_time.ToJsonString() if query.HasField("end_time") else None,
        "metadata": dict(query.metadata)}


def _numbers_as_struct(value) -> None:
    """Whole numbers below 2^53 are integers, every other number a double."""
    if isinstance(value, dict | list):
        for item in value.values() if isinstance(value, dict) else value:
            _numbers_as_struct(item)
    elif isinstance(value, int) and not isinstance(value, bool):
        assert abs(value) < 2**53, value
    elif isinstance(value, float):
        assert not value.is_integer() or abs(value) >= 2**53, value


async def test_the_json_form_holds_what_the_messages_hold(logs):
    await logs.write(_entries())
    for query in QUERIES:
        as_json = await _pages(logs.stub, query, JSON)
        as_messages = await _pages(logs.stub, query, MESSAGES)
        assert len(as_json) == len(as_messages), query
        for rendered, messages in zip(as_json, as_messages, strict=True):
            assert rendered.body.content_type == "application/json"
            assert not rendered.logs and not rendered.HasField("query")
            assert not messages.HasField("body")
            _same_as_messages(json.loads(rendered.body.data), messages)


async def test_json_reads_hold_what_the_messages_hold(logs):
    """ReadLogsAfter's JSON form (what the export reads) against its messages, page by page."""
    await logs.write(_entries())
    after = 0
    while True:
        request = pb.ReadLogsAfterRequest(after_id=after, page_size=10)
        messages = await logs.stub.ReadLogsAfter(request, timeout=30)
        request.format = pb.STORED_ENTRIES_FORMAT_JSON
        as_json = await logs.stub.ReadLogsAfter(request, timeout=30)
        assert not as_json.entries and as_json.high_id == messages.high_id
        arrays = json.loads(as_json.entries_json)
        assert len(arrays) == len(messages.entries)
        for got, want in zip(arrays, messages.entries, strict=True):
            assert got[:5] == [want.id, want.time_unix_nano, want.level, want.service,
                               want.message]
            # The stored text itself, exact numbers and all: what the export ships.
            assert got[5] == (json.loads(want.metadata_json) if want.metadata_json else None)
            # The bytes it counts towards the store's limit: its texts and a row's overhead.
            assert got[6] == ROW_OVERHEAD + len(want.service) + len(want.message.encode()) + len(
                want.metadata_json), got
        if not arrays:
            assert after >= messages.high_id
            return
        after = arrays[-1][0]


async def test_both_stores_render_the_same_documents(make_settings, tmp_path, postgres_url):
    async with AsyncExitStack() as stack:
        stubs = []
        for url in (f"sqlite:///{tmp_path / 'botmon.db'}", postgres_url):
            settings = make_settings(store_url=url, health_target="127.0.0.1:9",
                                     metrics_target="127.0.0.1:9")
            server = await stack.enter_async_context(await create_server(
                settings, address="127.0.0.1:0", logs_settings=QUIET))
            channel = await stack.enter_async_context(
                suite_channel(f"127.0.0.1:{server.port}", settings))
            stub = logs_service_pb2_grpc.LogsServiceStub(channel)
            await Logs(server, channel, stub).write(_entries())
            stubs.append(stub)
        sqlite, postgres = stubs
        for query in QUERIES:
            # SQLite writes metadata as validation stored it, PostgreSQL's jsonb in an
            # order of its own: the same objects, not always the same bytes.
            left = [_canonical(p.body.data) for p in await _pages(sqlite, query, JSON)]
            right = [_canonical(p.body.data) for p in await _pages(postgres, query, JSON)]
            assert left == right, query


@pytest.fixture
async def suite(make_settings, store_url):
    async with Suite(make_settings(store_url=store_url), components=("health", "logs")) as running:
        yield running


def _canonical(body: bytes) -> bytes:
    """The JSON text with object keys sorted, numbers exactly as written."""
    return orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)


async def test_rest_pages_are_those_of_the_json_mapping(suite):
    otlp = {"resourceLogs": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "otel"}}]},
        "scopeLogs": [{"logRecords": [{
            "timeUnixNano": str(int(T0 * 10**9) + 7), "severityText": "WARN",
            "body": {"stringValue": "processed by OTLP"},
            "attributes": [{"key": "exact", "value": {"intValue": str(2**60 + 1)}},
                           {"key": "ratio", "value": {"doubleValue": 3.0}}]}]}]}]}
    async with httpx.AsyncClient(timeout=30) as http:
        reply = await http.post(f"{suite.url}/v1/logs", json=otlp,
                                headers=suite.headers("operator"))
        assert reply.status_code == 200, reply.text
        rows = [{"timestamp": e.timestamp.ToJsonString(), "level": e.level,
                 "service": e.service, "message": e.message,
                 **({"metadata": json_format.MessageToDict(e.metadata)}
                    if e.HasField("metadata") else {})} for e in _entries()]
        reply = await http.post(f"{suite.base}/logs", json={"logs": rows},
                                headers=suite.headers("operator"))
        assert reply.status_code == 202, reply.text
        for query in ({"limit": "7"}, {"q": "processed", "order": "asc"},
                      {"level": "warn", "metadata.user_id": "user_456"}):
            cursor = None
            while cursor != "":
                params = {**query, **({"cursor": cursor} if cursor else {})}
                fast = await http.get(f"{suite.base}/logs", params=params,
                                      headers=suite.headers())
                mapped = await http.get(f"{suite.base}/logs",
                                        params={**params, "page_format": "messages"},
                                        headers=suite.headers())
                assert fast.status_code == mapped.status_code == 200, fast.text
                assert fast.headers["content-type"] == "application/json"
                assert _canonical(fast.content) == _canonical(mapped.content), params
                assert list(fast.json()) == list(mapped.json())
                cursor = fast.json()["next_cursor"]
        exact = (await http.get(f"{suite.base}/logs", params={"service": "otel"},
                                headers=suite.headers())).json()["logs"][0]["metadata"]
        # As a Struct holds it: the nearest double, and a whole double as an integer.
        assert exact == {"exact": float(2**60 + 1), "ratio": 3}
        assert b'"ratio":3}' in (await http.get(f"{suite.base}/logs?service=otel",
                                                headers=suite.headers())).content
        bad = await http.get(f"{suite.base}/logs?page_format=xml", headers=suite.headers())
        assert bad.status_code == 400
        assert "LOG_PAGE_FORMAT_JSON" in bad.json()["error"]["message"]
