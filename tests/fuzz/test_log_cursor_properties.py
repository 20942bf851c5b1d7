"""Properties of ``ListLogs`` paging, through the logs service's gRPC surface on SQLite.

For any set of entries, any filters and any page size: following ``next_cursor``
visits every match exactly once, in (timestamp, id) order in the asked direction;
``total`` is exact on every page and entries stored after the first page do not
join a walk already started; a cursor is refused with INVALID_ARGUMENT when it
is used with another query, or is not a cursor at all.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid

import asyncpg
import grpc
import pytest
from google.protobuf import struct_pb2, timestamp_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from botmon.logs.v1 import log_entry_pb2, logs_service_pb2, logs_service_pb2_grpc
from botmon.runtime.config import Settings
from services.logs.postgres_store import INSERT_LOCK
from tests.conftest import suite_channel, sync_suite_channel
from tests.fuzz.live import ThreadedSuite
from tests.harness import Suite

LEVELS = ("debug", "info", "warn", "error")
WORDS = ("alpha", "beta", "gamma")
COLOURS = ("red", "blue")
#: Entries are spread over 10 s in 250 ms steps, so equal timestamps are common.
STEP_NS = 250_000_000
STEPS = 40
DEADLINE = 10

entry = st.tuples(st.integers(0, STEPS - 1), st.sampled_from(LEVELS),
                  st.frozensets(st.sampled_from(WORDS)), st.sampled_from((None, *COLOURS)))
entries = st.lists(entry, max_size=30)


@st.composite
def queries(draw) -> dict:
    start = draw(st.none() | st.integers(0, STEPS - 1))
    end = draw(st.none() | st.integers((start or 0) + 1, STEPS + 1))
    return {"level": draw(st.sampled_from(("", "all", *LEVELS))),
            "q": draw(st.sampled_from(("", *WORDS))),
            "order": draw(st.sampled_from(("", "asc", "desc"))),
            "colour": draw(st.sampled_from((None, *COLOURS))),
            "start": start, "end": end, "limit": draw(st.integers(1, 7))}


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    """A ListLogs/WriteLogs stub onto a real logs service (SQLite store)."""
    settings = Settings.from_env({}, data_dir=tmp_path_factory.mktemp("logs"))
    with ThreadedSuite(settings, ("logs",), gateway=False) as suite, \
            sync_suite_channel(suite.settings.logs_target, suite.settings) as channel:
        yield logs_service_pb2_grpc.LogsServiceStub(channel)


def _stamp(base_ns: int, step: int) -> timestamp_pb2.Timestamp:
    ns = base_ns + step * STEP_NS
    return timestamp_pb2.Timestamp(seconds=ns // 10**9, nanos=ns % 10**9)


def write(stub, service: str, base_ns: int, items, first_index: int = 0) -> None:
    logs = []
    for index, (step, level, words, colour) in enumerate(items, first_index):
        metadata = struct_pb2.Struct()
        if colour:
            metadata.update({"colour": colour})
        logs.append(log_entry_pb2.LogEntry(
            timestamp=_stamp(base_ns, step), level=level, service=service,
            message=" ".join([f"entry{index}", *sorted(words)]), metadata=metadata))
    if logs:
        reply = stub.WriteLogs(logs_service_pb2.WriteLogsRequest(logs=logs), timeout=DEADLINE)
        assert reply.accepted == len(logs) and not reply.errors, reply.errors


def request(service: str, base_ns: int, query: dict,
            cursor: str = "") -> logs_service_pb2.ListLogsRequest:
    message = logs_service_pb2.ListLogsRequest(
        service=service, level=query["level"], q=query["q"], order=query["order"],
        limit=query["limit"], cursor=cursor)
    if query["colour"]:
        message.metadata["colour"] = query["colour"]
    if query["start"] is not None:
        message.start_time.CopyFrom(_stamp(base_ns, query["start"]))
    if query["end"] is not None:
        message.end_time.CopyFrom(_stamp(base_ns, query["end"]))
    return message


def expected(items, query: dict) -> set[str]:
    """Messages of the entries the query matches, by the documented semantics."""
    floor = LEVELS.index(query["level"]) if query["level"] in LEVELS else 0
    out = set()
    for index, (step, level, words, colour) in enumerate(items):
        if LEVELS.index(level) < floor:
            continue
        if query["q"] and query["q"] not in words:
            continue
        if query["colour"] and colour != query["colour"]:
            continue
        if query["start"] is not None and step < query["start"]:
            continue
        if query["end"] is not None and step >= query["end"]:
            continue
        out.add(" ".join([f"entry{index}", *sorted(words)]))
    return out


def fresh() -> tuple[str, int]:
    """A service name no other example uses, and a base time an hour ago."""
    return f"fuzz-{uuid.uuid4().hex[:12]}", (int(time.time()) - 3600) * 10**9


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(items=entries, query=queries(), late=entries)
def test_paging_visits_every_match_once_in_order(logs, items, query, late):
    service, base_ns = fresh()
    write(logs, service, base_ns, items)
    want = expected(items, query)
    descending = query["order"] != "asc"
    seen: list[tuple[int, int, str]] = []
    cursor, pages = "", 0
    while True:
        page = logs.ListLogs(request(service, base_ns, query, cursor), timeout=DEADLINE)
        pages += 1
        assert page.total == len(want)
        assert len(page.logs) <= query["limit"]
        seen.extend((e.timestamp.seconds * 10**9 + e.timestamp.nanos, e.id, e.message)
                    for e in page.logs)
        if pages == 1:
            # Stored after the walk began: must not appear in it, nor change its total.
            write(logs, service, base_ns, late, first_index=len(items))
        cursor = page.next_cursor
        if not cursor:
            break
        assert len(page.logs) == query["limit"], "a page before the last one is full"
        assert pages <= len(want), "more pages than matches"
    messages = [m for _, _, m in seen]
    assert len(messages) == len(set(messages)), "an entry was visited twice"
    assert set(messages) == want
    keys = [(ts, i) for ts, i, _ in seen]
    assert keys == sorted(keys, reverse=descending)
    assert pages == max(1, math.ceil(len(want) / query["limit"]))


CHANGES = {
    "order": lambda q: {**q, "order": "desc" if q["order"] == "asc" else "asc"},
    "level": lambda q: {**q, "level": "error" if q["level"] != "error" else "debug"},
    "q": lambda q: {**q, "q": "gamma" if q["q"] != "gamma" else "alpha"},
    "start": lambda q: {**q, "start": 0 if q["start"] != 0 else None},
    "end": lambda q: {**q, "end": STEPS + 1 if q["end"] != STEPS + 1 else None},
    "metadata": lambda q: {**q, "colour": "blue" if q["colour"] != "blue" else None},
}


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(query=queries(), change=st.sampled_from(sorted(CHANGES)),
       other_service=st.booleans())
def test_cursor_of_another_query_is_refused(logs, query, change, other_service):
    service, base_ns = fresh()
    query = {**query, "level": "", "q": "", "colour": None, "start": None, "end": None}
    # Enough matches for a second page: every entry matches the relaxed query.
    write(logs, service, base_ns,
          [(i % STEPS, "error", frozenset(WORDS), "red") for i in range(query["limit"] + 1)])
    cursor = logs.ListLogs(request(service, base_ns, query), timeout=DEADLINE).next_cursor
    assert cursor
    # The same query with another page size may go on with it.
    same = logs.ListLogs(request(service, base_ns, {**query, "limit": 7}, cursor),
                         timeout=DEADLINE)
    assert len(same.logs) == 1
    other = CHANGES[change](query)
    target = f"{service}-other" if other_service else service
    with pytest.raises(grpc.RpcError) as refused:
        logs.ListLogs(request(target, base_ns, other, cursor), timeout=DEADLINE)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "different query" in refused.value.details()


@pytest.mark.parametrize("cursor", ["not-a-cursor", "e30", "W10", "WzEsMiwzXQ", "%%%", "W251bGxd",
                                    "WyJhIiwxLDIsIngiXQ", "W3RydWUsMSwyLCJ4Il0"])
def test_garbage_cursor_is_refused(logs, cursor):
    query = {"level": "", "q": "", "order": "", "colour": None, "start": None, "end": None,
             "limit": 5}
    with pytest.raises(grpc.RpcError) as refused:
        logs.ListLogs(request("any", 0, query, cursor), timeout=DEADLINE)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "cursor" in refused.value.details()


async def test_postgres_walk_ignores_a_slower_replica_commit(make_settings, postgres_url):
    """On PostgreSQL, another replica's insert still open while page 1 is read stays out of
    the walk, and a write that queues behind it gets a later id (ids follow commit order)."""
    base_s = int(time.time()) - 60

    def entry_(message: str) -> log_entry_pb2.LogEntry:
        return log_entry_pb2.LogEntry(level="info", service="race", message=message,
                                      timestamp=timestamp_pb2.Timestamp(seconds=base_s))

    async with Suite(make_settings(store_url=postgres_url), ("logs",), gateway=False) as suite, \
            suite_channel(suite.settings.logs_target, suite.settings) as channel:
        stub = logs_service_pb2_grpc.LogsServiceStub(channel)
        await stub.WriteLogs(logs_service_pb2.WriteLogsRequest(logs=[entry_("first")]),
                             timeout=DEADLINE)
        query = {"service": "race", "limit": 1, "order": "asc"}
        # What PostgresLogStore.insert does on a second replica, held open across page 1.
        replica = await asyncpg.connect(postgres_url, timeout=DEADLINE)
        try:
            async with replica.transaction():
                await replica.execute("SELECT pg_advisory_xact_lock($1)", INSERT_LOCK)
                slow_id = await replica.fetchval(
                    "SELECT nextval(pg_get_serial_sequence('logs_entries', 'id'))")
                await replica.execute(
                    "INSERT INTO logs_entries (id, ts, level, service, message, metadata, size)"
                    " VALUES ($1, $2, 1, 'race', 'slow replica', NULL, 10)",
                    slow_id, base_s * 10**9)
                second = asyncio.ensure_future(stub.WriteLogs(logs_service_pb2.WriteLogsRequest(
                    logs=[entry_("second")]), timeout=DEADLINE))
                first = await stub.ListLogs(logs_service_pb2.ListLogsRequest(**query),
                                            timeout=DEADLINE)
                assert not second.done(), "the second write queues behind the open insert"
            await second
        finally:
            await replica.close()
        seen, total, cursor = [e.message for e in first.logs], first.total, first.next_cursor
        while cursor:
            page = await stub.ListLogs(logs_service_pb2.ListLogsRequest(**query, cursor=cursor),
                                       timeout=DEADLINE)
            assert page.total == total, "total changed during the walk"
            seen += [e.message for e in page.logs]
            cursor = page.next_cursor
        assert seen == ["first"] and total == 1
        fresh = await stub.ListLogs(logs_service_pb2.ListLogsRequest(service="race", order="asc"),
                                    timeout=DEADLINE)
        assert [e.message for e in fresh.logs] == ["first", "slow replica", "second"]
