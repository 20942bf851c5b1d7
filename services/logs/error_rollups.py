"""Error-level entries per minute, service and error type, kept with the entries themselves.

``logs_error_minutes`` is updated in the transaction that inserts error-level
entries and in the retention transaction that deletes them (rows that reach
zero are deleted there too), so its sums are exact at any snapshot and it holds
no rows the stored errors do not need. The error summary reads whole minutes
from it — a 30-day summary is at most 43,200 minutes × services × types of
small rows, whatever the number of errors — and only the entries of the one
partial minute at the start of the period from the entries (an index range of
at most a minute).

``error_type`` is ``metadata.error_type``: a string as it is, absent or null as
"", any other JSON value as its JSON text.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from typing import Any

from services.logs.levels import ERROR
from services.logs.row import NewEntry
from services.logs.store import ErrorCount

__all__ = ["MINUTE_NS", "PRUNE", "SCHEMA", "SUMMARY", "UPSERT", "changes", "combine", "error_type",
           "first_whole_minute", "of_entries", "of_rows"]

MINUTE_NS = 60 * 10**9

SCHEMA = """
CREATE TABLE IF NOT EXISTS logs_error_minutes (
    minute BIGINT NOT NULL,
    service TEXT NOT NULL,
    error_type TEXT NOT NULL,
    shard SMALLINT NOT NULL,
    errors BIGINT NOT NULL,
    PRIMARY KEY (minute, service, error_type, shard)
);
"""

#: Add to one row; parameters (minute, service, error_type, shard, delta).
UPSERT = ("INSERT INTO logs_error_minutes (minute, service, error_type, shard, errors) "
          "VALUES ({}, {}, {}, {}, {}) ON CONFLICT (minute, service, error_type, shard) "
          "DO UPDATE SET errors = logs_error_minutes.errors + excluded.errors")

#: Rows that retention emptied, between two minutes: they add nothing to any sum.
PRUNE = "DELETE FROM logs_error_minutes WHERE minute BETWEEN {} AND {} AND errors = 0"

#: Errors of whole minutes from minute {} on, by service and type.
SUMMARY = ("SELECT service, error_type, CAST(sum(errors) AS BIGINT) FROM logs_error_minutes "
           "WHERE minute >= {} GROUP BY service, error_type")


def first_whole_minute(since: int) -> int:
    """The first minute (Unix minutes) that starts at or after ``since`` (ns)."""
    return -(-since // MINUTE_NS)


def error_type(metadata: Any) -> str:
    """``metadata.error_type`` of a parsed metadata object, as the summary names it."""
    if not isinstance(metadata, dict):
        return ""
    value = metadata.get("error_type")
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def _type_of(metadata: str | None) -> str:
    # Most metadata has no error_type: skip parsing it then.
    if not metadata or '"error_type"' not in metadata:
        return ""
    return error_type(json.loads(metadata))


def of_entries(entries: Iterable[NewEntry]) -> Counter[tuple[int, str, str]]:
    """Error-level entries of a batch by (minute, service, error type)."""
    return Counter((e[0] // MINUTE_NS, e[2], _type_of(e[4])) for e in entries if e[1] == ERROR)


def of_rows(rows: Iterable[tuple[int, str, str | None]]) -> Counter[tuple[int, str, str]]:
    """Deleted error-level entries, given as (ts, service, metadata JSON), by key."""
    return Counter((ts // MINUTE_NS, service, _type_of(metadata)) for ts, service, metadata in rows)


def changes(counts: Counter[tuple[int, str, str]], shard: int, sign: int = 1) -> list[tuple]:
    """UPSERT parameter rows, in key order (one lock order for concurrent transactions)."""
    return [(minute, service, kind, shard, sign * n)
            for (minute, service, kind), n in sorted(counts.items())]


def combine(whole: Iterable[tuple[str, str, int]],
            partial: Iterable[tuple[str, str | None]]) -> list[ErrorCount]:
    """Counts of a period: rollups of its whole minutes as (service, type, errors), and the
    entries of its partial first minute as (service, metadata JSON)."""
    counts: Counter[tuple[str, str]] = Counter()
    for service, kind, n in whole:
        counts[service, kind] += n
    for service, metadata in partial:
        counts[service, _type_of(metadata)] += 1
    return [ErrorCount(service, kind, n) for (service, kind), n in counts.items() if n]
