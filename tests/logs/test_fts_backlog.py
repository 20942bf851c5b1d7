"""Full-text indexing after the commit (SQLite): searches stay exact, old databases keep working."""

from __future__ import annotations

import sqlite3

from services.logs import sqlite_fts
from services.logs.query import build_filter, build_query
from services.logs.sqlite_store import SqliteLogStore
from tests.logs.support import entry, now


def _new(i: int, word: str = "alpha") -> tuple:
    return (int(now() * 1e9) + i, 1, "api", f"{word} entry {i}", None, 80)


def _search(word: str):
    return build_query(build_filter("", "", word, {}), start=None, end=None, order="asc",
                       limit=1000, cursor="")


def _integrity(path) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute("INSERT INTO logs_fts (logs_fts) VALUES ('integrity-check')")
    finally:
        conn.close()


async def test_an_acknowledged_entry_is_found_at_once_while_ingest_continues(logs):
    for round_ in range(5):
        reply = await logs.write([entry(message=f"burst{round_} line {i}") for i in range(2000)])
        assert reply.accepted == 2000
        page = await logs.list(q=f"burst{round_}", limit=10)
        assert page.total == 2000
        found, totals = await logs.all_pages(q=f"burst{round_}", limit=1000)
        assert len(found) == 2000 and set(totals) == {2000}


async def test_the_backlog_is_indexed_in_the_background_and_on_demand(tmp_path):
    path = tmp_path / "botmon.db"
    store = SqliteLogStore(path)
    await store.open()
    try:
        await store.insert([_new(i) for i in range(300)])
        conn = sqlite3.connect(path)
        assert conn.execute("SELECT indexed_id FROM logs_fts_state").fetchone()[0] == 0
        page = await store.list(_search("alpha"))  # catches up first
        assert page.total == 300 and page.high_id == 300
        await store.insert([_new(i) for i in range(300, 400)])
        while await store.index_backlog():
            pass
        assert conn.execute("SELECT indexed_id FROM logs_fts_state").fetchone()[0] == 400
        conn.close()
        # Deleting entries of the backlog must not unindex what was never indexed.
        await store.insert([_new(i, "beta") for i in range(400, 450)])
        freed = await store.drop_oldest(420)
        assert freed.entries == 420
        assert (await store.list(_search("beta"))).total == 30
    finally:
        await store.close()
    _integrity(path)


async def test_a_commit_indexes_its_backlog_itself_beyond_the_bound(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite_fts, "MAX_BACKLOG", 100)
    path = tmp_path / "botmon.db"
    store = SqliteLogStore(path)
    await store.open()
    try:
        await store.insert([_new(i) for i in range(80)])
        await store.insert([_new(i) for i in range(80, 160)])
        conn = sqlite3.connect(path)
        assert conn.execute("SELECT indexed_id FROM logs_fts_state").fetchone()[0] == 160
        conn.close()
    finally:
        await store.close()
    _integrity(path)


async def test_a_database_of_the_previous_version_is_fully_indexed(tmp_path):
    path = tmp_path / "botmon.db"
    store = SqliteLogStore(path)
    await store.open()
    await store.insert([_new(i) for i in range(50)])
    await store.list(_search("alpha"))
    await store.close()
    # The previous version indexed inside every commit and had no state table.
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE logs_fts_state")
    conn.close()
    store = SqliteLogStore(path)
    await store.open()
    try:
        assert not await store.index_backlog()
        assert (await store.list(_search("alpha"))).total == 50
    finally:
        await store.close()
    _integrity(path)
