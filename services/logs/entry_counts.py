"""Entries stored per service and level, kept in the transactions that insert and delete them.

``logs_counts`` has one row per (service, level, shard); shards spread the
updates of concurrent writers (PostgreSQL replicas, retention) over rows as
``logs_usage`` does. A list query without text, metadata or time filters
takes its exact ``total`` from these rows instead of counting index entries
(a million-line store: ~90 ms of index walk → well under a millisecond), and a
text search uses them to estimate how many entries its indexed filters allow.

The rows are read in the same snapshot as the page, so the total is as exact
as a ``COUNT(*)``; entries committed after the snapshot's highest id (a later
page of a cursor walk) are subtracted by a count over their id range, which
the primary key bounds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from services.logs.row import NewEntry

__all__ = ["INIT", "SCHEMA", "UPSERT", "by_key", "changes", "count_sql"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS logs_counts (
    service TEXT NOT NULL,
    level SMALLINT NOT NULL,
    shard SMALLINT NOT NULL,
    entries BIGINT NOT NULL,
    PRIMARY KEY (service, level, shard)
);
"""

#: Run at every open, after SCHEMA, where no writer runs: a store created by a
#: version without the table counts its entries once; afterwards the table is
#: never empty while entries exist (rows stay, at zero, when their entries go).
INIT = ("INSERT INTO logs_counts (service, level, shard, entries) "
        "SELECT service, level, 0, count(*) FROM logs_entries "
        "WHERE NOT EXISTS (SELECT 1 FROM logs_counts) GROUP BY service, level")

#: Add to one row; parameters (service, level, shard, delta) in the dialect's placeholders.
UPSERT = ("INSERT INTO logs_counts (service, level, shard, entries) VALUES ({}, {}, {}, {}) "
          "ON CONFLICT (service, level, shard) DO UPDATE "
          "SET entries = logs_counts.entries + excluded.entries")


def by_key(entries: Iterable[NewEntry]) -> Counter[tuple[str, int]]:
    """Entries of a batch by (service, level)."""
    return Counter((e[2], e[1]) for e in entries)


def changes(counts: Counter[tuple[str, int]], shard: int, sign: int = 1) -> list[tuple]:
    """UPSERT parameter rows adding (``sign`` 1) or removing (-1) ``counts``, in key order
    (so that two PostgreSQL transactions lock shared rows in one order: no deadlock)."""
    return [(service, level, shard, sign * n) for (service, level), n in sorted(counts.items())]


def count_sql(service: str, levels: tuple[int, ...], add: Callable[[Any], str]) -> str:
    """Entries of ``levels`` (of ``service`` when given) as the rows say."""
    where = f"level IN ({', '.join(map(str, levels))})"
    if service:
        where += f" AND service = {add(service)}"
    return f"SELECT coalesce(sum(entries), 0) FROM logs_counts WHERE {where}"
