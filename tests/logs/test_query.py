"""Listing over gRPC on SQLite and PostgreSQL: every filter and combination, totals, cursors."""

from __future__ import annotations

import asyncio
import itertools
import random
import re

import grpc
import pytest

from tests.logs.support import entry, now

ORDER = {"debug": 0, "info": 1, "warn": 2, "error": 3}
WORDS = ["request", "processed", "Connection", "refused", "timeout", "retry", "user", "cache",
         "Connection-timeout", "disk"]
T0 = float(int(now()) - 7200)


def _dataset(count: int = 300) -> list[dict]:
    rng = random.Random(7)
    rows = []
    for i in range(count):
        metadata = {"user_id": f"u{i % 3}", "duration_ms": rng.choice([150, 151, 2.5]),
                    "flag": i % 4 == 0, "http": {"status": rng.choice([200, 500])},
                    "code": rng.choice(["150", "x"])}
        if i % 5 == 0:
            del metadata["user_id"]
        rows.append({
            "level": rng.choice(list(ORDER)),
            "service": rng.choice(["api", "db", "worker"]),
            # Whole seconds, several entries per second: ties are ordered by id.
            "ts": T0 + rng.randrange(0, 600),
            "message": " ".join(rng.sample(WORDS, 3)) + f" #{i}",
            "metadata": metadata,
        })
    return rows


def _words(text: str) -> set[str]:
    return set(re.findall(r"[^\W_]+", text.lower()))


def _meta_match(metadata: dict, key: str, text: str) -> bool:
    value = metadata
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return False
        value = value[part]
    if isinstance(value, bool):
        return text == ("true" if value else "false")
    if isinstance(value, str):
        return value == text
    try:
        return float(text) == value
    except ValueError:
        return False


def _expected(rows: list[dict], level=None, service=None, start=None, end=None, q=None,
              metadata=None, order="desc") -> list[int]:
    """Positions (in write order) of the rows a query must return, in its order."""
    hits = []
    for position, row in enumerate(rows):
        if level and ORDER[row["level"]] < ORDER[level]:
            continue
        if service and row["service"] != service:
            continue
        if start is not None and row["ts"] < start:
            continue
        if end is not None and row["ts"] >= end:
            continue
        if q and not _words(q) <= _words(row["message"]):
            continue
        if metadata and not all(_meta_match(row["metadata"], k, v) for k, v in metadata.items()):
            continue
        hits.append(position)
    hits.sort(key=lambda p: (rows[p]["ts"], p), reverse=order == "desc")
    return hits


async def _load(logs, rows) -> list[int]:
    """Write ``rows`` in order; returns their ids by position."""
    reply = await logs.write([entry(r["level"], r["service"], r["message"], r["ts"], r["metadata"])
                              for r in rows])
    assert reply.accepted == len(rows)
    stored, _ = await logs.all_pages(order="asc", limit=1000)
    by_message = {e.message: e.id for e in stored}
    return [by_message[r["message"]] for r in rows]


LEVELS = [None, "warn"]
SERVICES = [None, "api"]
RANGES = [None, (T0 + 100, T0 + 400)]
QUERIES = [None, "timeout", "CONNECTION refused"]
MATCHERS = [None, {"user_id": "u1"}, {"duration_ms": "150"}, {"http.status": "500"},
            {"flag": "true"}, {"code": "150"}, {"user_id": "u2", "flag": "false"}]


async def test_every_filter_and_combination_returns_exactly_the_matches(logs):
    rows = _dataset()
    ids = await _load(logs, rows)
    for level, service, span, q, matchers in itertools.product(LEVELS, SERVICES, RANGES,
                                                               QUERIES, MATCHERS):
        start, end = span or (None, None)
        for order in ("desc", "asc"):
            query = {"level": level, "service": service, "start_time": start, "end_time": end,
                     "q": q, "metadata": matchers, "order": order}
            page = await logs.list(limit=1000, **{k: v for k, v in query.items() if v})
            want = [ids[p] for p in _expected(rows, level, service, start, end, q, matchers,
                                              order)]
            assert [e.id for e in page.logs] == want, query
            assert page.total == len(want), query
            assert not page.next_cursor


async def test_level_is_a_minimum_severity(logs):
    await logs.write([entry(level, message=level) for level in ORDER])
    for level, expected in [("debug", 4), ("info", 3), ("warn", 2), ("warning", 2),
                            ("error", 1), ("all", 4), ("", 4)]:
        page = await logs.list(level=level)
        assert page.total == expected, level
        assert page.query.level == (level.replace("warning", "warn") or "all")


async def test_time_range_is_half_open(logs):
    await logs.write([entry(message=str(s), ts=T0 + s) for s in range(10)])
    page = await logs.list(start_time=T0 + 3, end_time=T0 + 7, order="asc")
    assert [e.message for e in page.logs] == ["3", "4", "5", "6"]
    assert page.query.start_time.seconds == int(T0 + 3)
    assert page.query.end_time.seconds == int(T0 + 7)


async def test_default_limit_total_and_query_echo(logs):
    await logs.write([entry(message=f"m{i}", ts=T0 + i) for i in range(150)])
    page = await logs.list(service="api", metadata={})
    assert len(page.logs) == 100 and page.total == 150 and page.next_cursor
    assert page.logs[0].message == "m149"
    echo = page.query
    assert (echo.level, echo.limit, echo.service, echo.q, echo.order) == ("all", 100, "api",
                                                                          "", "desc")
    page = await logs.list(q="m7", metadata={"user_id": "x"}, limit=5, order="ASC")
    assert page.total == 0 and not page.logs and not page.next_cursor
    assert (page.query.q, dict(page.query.metadata), page.query.limit,
            page.query.order) == ("m7", {"user_id": "x"}, 5, "asc")


@pytest.mark.parametrize("order", ["desc", "asc"])
async def test_pages_cover_every_match_once_while_ingest_continues(logs, order):
    rows = _dataset(400)
    ids = await _load(logs, rows)
    want = [ids[p] for p in _expected(rows, level="info", order=order)]
    # The walk's snapshot is its first page's: nothing is written before that page is read.
    first = await logs.list(level="info", order=order, limit=7)
    stop, written = asyncio.Event(), asyncio.Event()

    async def keep_writing():
        # New entries at every time: newer than everything, and inside the listed range.
        n = 0
        while not stop.is_set():
            await logs.write([entry("error", message=f"late {n}", ts=T0 + n % 600),
                              entry("error", message=f"new {n}")])
            written.set()
            n += 1
            await asyncio.sleep(0)

    writer = asyncio.create_task(keep_writing())
    try:
        await written.wait()  # the rest of the walk runs while entries arrive
        rest, totals = await logs.all_pages(cursor=first.next_cursor, level="info",
                                            order=order, limit=7)
    finally:
        stop.set()
        await writer
    assert [e.id for e in (*first.logs, *rest)] == want
    assert set(totals) == {first.total} == {len(want)}
    # A new first page sees what was written meanwhile.
    assert (await logs.list(level="info")).total > len(want)


async def test_limit_can_change_between_pages(logs):
    await logs.write([entry(message=f"m{i}", ts=T0 + i) for i in range(10)])
    first = await logs.list(limit=3)
    second = await logs.list(limit=5, cursor=first.next_cursor)
    assert [e.message for e in (*first.logs, *second.logs)] == [f"m{i}" for i in range(9, 1, -1)]


async def test_cursor_of_another_query_is_refused(logs):
    await logs.write([entry(message=f"m{i}", ts=T0 + i) for i in range(10)])
    first = await logs.list(limit=3, service="api")
    for other in ({"service": "db"}, {"service": "api", "order": "asc"},
                  {"service": "api", "level": "warn"}, {"service": "api", "q": "m1"},
                  {"service": "api", "metadata": {"a": "b"}},
                  {"service": "api", "start_time": T0}):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await logs.list(limit=3, cursor=first.next_cursor, **other)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "cursor belongs to a different query" in info.value.details()


BAD_QUERIES = [
    ({"limit": 1001}, "limit must be between 1 and 1000, got 1001"),
    ({"limit": -1}, "limit must be between 1 and 1000, got -1"),
    ({"level": "loud"}, "level 'loud' is not a level"),
    ({"order": "sideways"}, "order must be asc or desc"),
    ({"start_time": T0 + 10, "end_time": T0 + 10}, "start_time must be before end_time"),
    ({"start_time": T0 + 10, "end_time": T0}, "start_time must be before end_time"),
    ({"q": "!!! ???"}, "q must contain at least one word"),
    ({"q": "x" * 300}, "q is 300 characters"),
    ({"metadata": {"a..b": "1"}}, "metadata key 'a..b' is not valid"),
    ({"metadata": {"": "1"}}, "metadata key '' is not valid"),
    ({"cursor": "not-a-cursor"}, "cursor is not a cursor of this API"),
    ({"cursor": "WzEsMiwzXQ"}, "cursor is not a cursor of this API"),  # base64 of [1,2,3]
]


@pytest.mark.parametrize(("query", "says"), BAD_QUERIES, ids=[s for _, s in BAD_QUERIES])
async def test_bad_queries_say_what_to_fix(logs, query, says):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await logs.list(**query)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert says in info.value.details()
