"""SQLite full-text indexing, deferred from the commit path and caught up on demand.

A commit stores entries only; their words go into ``logs_fts`` afterwards, in id
order. ``logs_fts_state.indexed_id`` says how far the index reaches: every
entry with a greater id is not in it yet. It is updated in the same transaction
as the full-text rows it covers, so a crash (even ``kill -9``) loses both or
neither, and the backlog is simply indexed again after a restart.

The backlog is worked off

- in the background while no commit waits (:meth:`SqliteLogStore.index_backlog`,
  called by the group committer when it is idle), ``STEP`` entries per
  transaction, so a commit arriving meanwhile waits for one step at most;
- inside a commit once more than ``MAX_BACKLOG`` entries wait, which bounds it
  under sustained ingest (such a commit pays for indexing as every commit used to);
- before every ``q`` search, which first indexes up to the newest entry — so an
  acknowledged entry is found at once — and then reads a snapshot capped at
  ``indexed_id``, so results and ``total`` never miss an unindexed entry.

The trade-off: ingest acknowledges without the full-text work (about a third of
a commit's cost), and a ``q`` search issued right after a burst waits for its
backlog, at most ``MAX_BACKLOG`` entries (about 1.5 µs each on a 2-core machine).
Sustained ingest beyond what the writer can index in its idle time runs at the
old, index-in-every-commit rate.
"""

from __future__ import annotations

import sqlite3

from botmon.runtime.store import write_transaction

__all__ = ["INIT", "MAX_BACKLOG", "SCHEMA", "STEP", "index", "indexed_id", "step"]

#: Entries indexed per background transaction.
STEP = 10_000
#: Unindexed entries a commit tolerates before it indexes them itself.
MAX_BACKLOG = 100_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS logs_fts_state (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    indexed_id INTEGER NOT NULL
);
"""
#: Run after SCHEMA: a database written by a version that indexed inside every
#: commit is fully indexed; a new one has nothing to index.
INIT = ("INSERT OR IGNORE INTO logs_fts_state (one, indexed_id) "
        "SELECT 1, coalesce(max(id), 0) FROM logs_entries")


def indexed_id(conn: sqlite3.Connection) -> int:
    """The greatest id whose entry is (or would be, were it not deleted) in ``logs_fts``."""
    return conn.execute("SELECT indexed_id FROM logs_fts_state").fetchone()[0]


def index(conn: sqlite3.Connection, up_to: int) -> None:
    """Index the entries after ``indexed_id`` up to id ``up_to``, inside the caller's write
    transaction (which must commit them)."""
    conn.execute("INSERT INTO logs_fts (rowid, message) SELECT id, message FROM logs_entries "
                 "WHERE id > (SELECT indexed_id FROM logs_fts_state) AND id <= ?", (up_to,))
    conn.execute("UPDATE logs_fts_state SET indexed_id = ?1 WHERE indexed_id < ?1", (up_to,))


def step(conn: sqlite3.Connection, limit: int | None) -> tuple[int, int]:
    """One transaction indexing up to ``limit`` ids of the backlog (all of it for None).

    Returns ``(indexed_id, entries still waiting)``.
    """
    with write_transaction(conn):
        done = indexed_id(conn)
        top = conn.execute("SELECT coalesce(max(id), 0) FROM logs_entries").fetchone()[0]
        up_to = top if limit is None else min(top, done + limit)
        if up_to > done:
            index(conn, up_to)
    return max(done, up_to), top - max(done, up_to)
