"""Text searches planned from the most selective index, and totals from the stored counts.

The plan tests read SQLite's ``EXPLAIN QUERY PLAN`` of every statement a search
runs, so a regression of the plan (a rare token walking the level index again)
fails here, not only in a benchmark. The other tests check, on both stores, that
the plans give exactly what a plain scan would, whatever the timestamps.
"""

from __future__ import annotations

import asyncio
import random
import re
import sqlite3
from dataclasses import replace

import pytest

from services.logs import sqlite_search
from services.logs.config import LogsSettings, parse_retention
from services.logs.query import Position, build_filter, build_query
from services.logs.sql import stored_total_sql
from services.logs.sqlite_store import SqliteDialect, SqliteLogStore
from tests.logs.support import entry, now

HOUR = 3600 * 10**9
N = 6000
LEVELS = (0,) * 8 + (1,) * 8 + (2,) * 3 + (3,)  # debug 40%, info 40%, warn 15%, error 5%


def _new(i: int, t0: int) -> tuple:
    """Entry ``i`` of the plan tests' store: 20 services, one day, ts following ids."""
    message = f"{'alpha' if i % 5 < 2 else 'beta'} order n{i} done"
    return (t0 + i * (24 * HOUR // N), LEVELS[i % 20], f"svc{i // 7 % 20}", message, None, 80)


@pytest.fixture
async def million_like(tmp_path):
    """A SQLite store shaped like the benchmark's, small; yields (path, t0)."""
    path = tmp_path / "botmon.db"
    store = SqliteLogStore(path)
    await store.open()
    t0 = int(now() * 1e9) - 24 * HOUR
    await store.insert([_new(i, t0) for i in range(N)])
    await store.list(_query(q="alpha"))  # indexes the backlog
    await store.close()
    yield path, t0


def _query(level="", service="", q="", start=None, end=None, order="desc", limit=100):
    return build_query(build_filter(level, service, q, {}), start=start, end=end, order=order,
                       limit=limit, cursor="")


def _plans(path, query) -> tuple[list[str], tuple[list, int]]:
    """Every plan line of the statements ``query``'s search runs, and its result."""
    conn = sqlite3.connect(path)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    conn.execute("BEGIN")
    result = sqlite_search.search(conn, query, N, SqliteDialect())
    conn.execute("COMMIT")
    conn.set_trace_callback(None)
    lines = []
    for sql in statements:
        if sql.startswith(("BEGIN", "COMMIT", "--")):  # "--": the full-text index's own
            continue
        lines += [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql)]
    conn.close()
    return lines, result


def _walks_level_index_without_time(lines: list[str]) -> bool:
    return any(re.search(r"INDEX logs_entries_(service_)?level_ts \((service=\? AND )?"
                         r"level=\?\)$", line) for line in lines)


@pytest.mark.parametrize("level", ["", "warn"])
async def test_a_rare_token_is_driven_from_the_full_text_index(million_like, level):
    path, _ = million_like
    lines, (rows, total) = _plans(path, _query(level=level, q="n4321"))
    assert total == (1 if not level or LEVELS[4321 % 20] >= 2 else 0)
    assert any(line.startswith("SCAN logs_fts VIRTUAL TABLE") for line in lines), lines
    assert not any("logs_entries_" in line for line in lines), lines
    assert not any(line.startswith("SCAN logs_entries") for line in lines), lines


async def test_a_common_word_counts_in_the_index_and_reads_a_bounded_page(million_like):
    path, _ = million_like
    lines, (rows, total) = _plans(path, _query(q="alpha"))
    assert total == N * 2 // 5 and len(rows) == 101
    assert not _walks_level_index_without_time(lines), lines
    assert not any(line.startswith("SCAN logs_entries") for line in lines), lines
    assert any(re.search(r"INDEX logs_entries_level_ts \(level=\? AND ts>\?\)", line)
               for line in lines), lines


async def test_a_common_word_in_one_service_and_hour_walks_their_index_range(million_like):
    path, t0 = million_like
    query = _query(service="svc3", q="alpha", start=t0 + 5 * HOUR, end=t0 + 6 * HOUR)
    lines, (rows, total) = _plans(path, query)
    want = [i for i in range(N) if i // 7 % 20 == 3 and i % 5 < 2
            and t0 + 5 * HOUR <= _new(i, t0)[0] < t0 + 6 * HOUR]
    assert total == len(want) > 0
    assert any("INDEX logs_entries_service_level_ts (service=? AND level=? AND ts>? AND ts<?)"
               in line for line in lines), lines
    assert not any(line.startswith("SCAN logs_entries") for line in lines), lines


async def test_unfiltered_and_level_totals_read_the_counts_not_the_entries(million_like):
    """A first page's total is the counts alone; a later page's takes away the entries
    after its snapshot by their id range, never a walk of the level indexes."""
    path, _ = million_like
    conn = sqlite3.connect(path)
    for query, want in ((_query(), N), (_query(level="warn"), N * 4 // 20),
                        (_query(service="svc7", level="info"),
                         sum(1 for i in range(N) if i // 7 % 20 == 7 and LEVELS[i % 20] >= 1))):
        later = replace(query, after=Position(0, N, N - 100))
        for page, high_id, entries in ((query, N, "none"), (later, N - 100, "id range")):
            sql, params = stored_total_sql(page, high_id, SqliteDialect())
            lines = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
            newer = sum(1 for i in range(high_id, N) if _counted_by(page, i))
            assert conn.execute(sql, params).fetchone()[0] == want - newer
            assert not _walks_level_index_without_time(lines), lines
            assert any("logs_counts" in line for line in lines), lines
            reads = [line for line in lines if "logs_entries" in line]
            assert reads == ([] if entries == "none" else
                             ["SEARCH logs_entries USING INTEGER PRIMARY KEY (rowid>?)"]), lines
    conn.close()


def _counted_by(query, i: int) -> bool:
    """Whether the i-th stored entry (id i + 1) matches ``query``'s service and level."""
    _, level, service, *_ = _new(i, 0)
    return level in query.filter.levels and query.filter.service in ("", service)


# -- exact on both stores, whatever the timestamps --------------------------------------

def _words(text: str) -> set[str]:
    return set(re.findall(r"[^\W_]+", text.lower()))


async def test_searches_are_exact_when_timestamps_do_not_follow_arrival(logs):
    rng = random.Random(17)
    t0 = now() - 3600
    rows = []
    for i in range(400):
        rows.append({"level": rng.choice(["debug", "info", "warn", "error"]),
                     "service": rng.choice(["api", "db"]),
                     # late and early arrivals: timestamps unrelated to the order written
                     "ts": t0 + rng.randrange(3000) + (i % 7) * 0.001,
                     "message": f"{rng.choice(['alpha', 'alpha beta', 'gamma'])} n{i}"})
    for start in range(0, 400, 100):
        await logs.write([entry(r["level"], r["service"], r["message"], r["ts"])
                          for r in rows[start:start + 100]])
    order_of = {"debug": 0, "info": 1, "warn": 2, "error": 3}
    cases = [{"q": "alpha"}, {"q": "beta alpha"}, {"q": "alpha", "level": "warn"},
             {"q": "alpha", "service": "db"}, {"q": "n123"}, {"q": "nothing"},
             {"q": "alpha", "start_time": t0 + 1000, "end_time": t0 + 2000}]
    for case in cases:
        for order in ("desc", "asc"):
            want = [r for r in rows
                    if _words(case["q"]) <= _words(r["message"])
                    and order_of[r["level"]] >= order_of[case.get("level", "debug")]
                    and r["service"] == case.get("service", r["service"])
                    and case.get("start_time", 0) <= r["ts"] < case.get("end_time", 1e12)]
            want.sort(key=lambda r: (r["ts"], int(r["message"].rsplit("n", 1)[1])),
                      reverse=order == "desc")
            got, totals = await logs.all_pages(order=order, limit=9, **case)
            assert [e.message for e in got] == [r["message"] for r in want], (case, order)
            assert set(totals) == {len(want)}, (case, order)


@pytest.fixture
def logs_settings() -> LogsSettings:
    return LogsSettings(retention=parse_retention("debug=3d,default=30d"), retention_interval=0.2)


async def test_stored_counts_follow_ingest_and_retention(logs):
    t = now()
    kinds = [("debug", "api"), ("info", "api"), ("warn", "db"), ("error", "db")]
    # A fifth of each kind is 4 days old: retention removes the debug ones.
    await logs.write([entry(level, service, f"m{i}", ts=t - (4 * 86_400 if i % 5 == 0 else i))
                      for i, (level, service) in enumerate(kinds * 25)])
    for _ in range(200):
        everything, _ = await logs.all_pages(limit=1000)
        if len(everything) == 95:
            break
        await asyncio.sleep(0.05)
    assert len(everything) == 95
    assert (await logs.list()).total == 95
    assert (await logs.list(level="debug")).total == 95
    assert (await logs.list(level="info")).total == 75
    assert (await logs.list(service="api")).total == 45
    assert (await logs.list(service="db", level="error")).total == 25
    assert (await logs.list(service="nope")).total == 0
    await logs.write([entry("debug", "api", "new one")])
    assert (await logs.list(service="api", level="debug")).total == 46


async def test_a_store_without_counts_is_counted_when_opened(tmp_path):
    path = tmp_path / "botmon.db"
    store = SqliteLogStore(path)
    await store.open()
    t0 = int(now() * 1e9)
    await store.insert([_new(i, t0) for i in range(200)])
    await store.close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE logs_counts")  # as a store of the previous version
    conn.close()
    store = SqliteLogStore(path)
    await store.open()
    try:
        assert (await store.list(_query())).total == 200
        assert (await store.list(_query(level="error"))).total == 10
    finally:
        await store.close()
