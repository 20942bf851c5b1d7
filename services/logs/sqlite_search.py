"""SQLite ``q`` searches driven from the full-text index, within the narrowest id span.

A search walks the full-text matches (``logs_fts`` first, forced by ``CROSS
JOIN``) and looks each entry up by id to test the other filters: its cost
follows the matches — one for a pasted request id. The alternative the planner
would pick, walking the ``(service, level, ts)`` / ``(level, ts)`` ranges of the
other filters and testing each entry against the matches, costs as many rows as
the ranges hold (a million for a search with no other filter) and builds the
whole match list on top.

A time range is the one filter that bounds the matches' ids too (ids follow
arrival): when its index ranges hold fewer entries than the word has matches —
both counted, each capped by the other so that measuring never costs more than
the cheaper side — the walk is confined to the id span of those ranges
(:func:`services.logs.sql.span_sql`), so a common word within an hour reads
that hour's matches only.

A page does not sort every match: it takes the first ``n`` matches in id order
and reads the page from the time-ordered indexes within the bound they give
(:func:`services.logs.sql.bounded`). Fewer than ``n`` are all the matches, and
are the page. Either way the result is exact.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from typing import Any

from services.logs import entry_counts
from services.logs.query import LogQuery
from services.logs.row import Row
from services.logs.sql import Dialect, bounded, list_sql, search_conditions, span_sql

__all__ = ["search"]

_TABLE = "logs_entries"
_COLUMNS = "id, ts, level, service, logs_entries.message, metadata"
_JOIN = "logs_fts CROSS JOIN logs_entries ON id = logs_fts.rowid"


def _match(query: LogQuery) -> str:
    return " ".join(f'"{term}"' for term in query.filter.terms)


def _one(conn: sqlite3.Connection, sql: str, params: list[Any]) -> Any:
    return conn.execute(sql, params).fetchone()[0]


def _matches(conn: sqlite3.Connection, query: LogQuery, high_id: int, cap: int) -> int:
    """Full-text matches with id ≤ ``high_id``, counted up to ``cap + 1``."""
    return _one(conn, "SELECT count(*) FROM (SELECT 1 FROM logs_fts WHERE logs_fts MATCH ?1 "
                      "AND rowid <= ?2 LIMIT ?3)", [_match(query), high_id, cap + 1])


def _in_ranges(conn: sqlite3.Connection, query: LogQuery, high_id: int, dialect: Dialect,
               cap: int) -> int:
    """Entries in the index ranges of the service, level and time filters, up to ``cap + 1``."""
    params: list[Any] = []
    where = search_conditions(_bare(query), high_id, dialect, params)
    params.append(cap + 1)
    return _one(conn, f"SELECT count(*) FROM (SELECT 1 FROM {_TABLE} WHERE {where} "
                      f"LIMIT {dialect.placeholder(len(params))})", params)


def _bare(query: LogQuery) -> LogQuery:
    """``query`` without its text and metadata filters and cursor."""
    return LogQuery(replace(query.filter, terms=(), matchers=()), query.start, query.end)


def _stored(conn: sqlite3.Connection, query: LogQuery, dialect: Dialect) -> int:
    params: list[Any] = []

    def add(value: Any) -> str:
        params.append(value)
        return dialect.placeholder(len(params))
    return _one(conn, entry_counts.count_sql(query.filter.service, query.filter.levels, add),
                params)


def _text_driven(conn: sqlite3.Connection, query: LogQuery, high_id: int, ids: tuple[int, int],
                 dialect: Dialect, select: str, keyset: bool, tail: str = "") -> sqlite3.Cursor:
    """Matches with ids within ``ids`` that pass the other filters, walked from the index."""
    params: list[Any] = [_match(query), *ids]
    where = search_conditions(query, high_id, dialect, params, keyset=keyset, terms=False)
    return conn.execute(f"SELECT {select} FROM {_JOIN} WHERE logs_fts MATCH ?1 "
                        f"AND logs_fts.rowid BETWEEN ?2 AND ?3 AND {where}{tail}", params)


def _index_page(conn: sqlite3.Connection, query: LogQuery, high_id: int,
                dialect: Dialect) -> list[Row]:
    """The page of a query with a time range, walking its index ranges in time order."""
    span, params = span_sql(query, high_id, dialect, _TABLE)
    low, high = conn.execute(span, params).fetchone()
    if low is None:
        return []
    sql = list_sql(query, high_id, dialect, _TABLE, (low, high))
    return _rows(conn.execute(sql.page, sql.page_params))


def _rows(cursor: sqlite3.Cursor) -> list[Row]:
    return [Row(r[0], r[1], r[2], r[3], r[4], r[5]) for r in cursor]


def _text_page(conn: sqlite3.Connection, query: LogQuery, high_id: int, ids: tuple[int, int],
               dialect: Dialect) -> tuple[list[Row], bool]:
    """A page, and whether it holds every match past the cursor."""
    n = query.limit + 1
    desc = query.order == "desc"
    first = _rows(_text_driven(conn, query, high_id, ids, dialect, _COLUMNS, keyset=True,
                               tail=f" ORDER BY logs_fts.rowid {'DESC' if desc else 'ASC'} "
                                    f"LIMIT {n}"))
    narrowed = bounded(query, first)
    if narrowed is None:
        first.sort(key=lambda r: (r.ts, r.id), reverse=desc)
        return first, True
    return _index_page(conn, narrowed, high_id, dialect), False


def search(conn: sqlite3.Connection, query: LogQuery, high_id: int,
           dialect: Dialect) -> tuple[list[Row], int]:
    """The page (up to ``limit + 1`` rows) and exact total of a ``q`` search, inside the
    caller's read transaction, over entries with id ≤ ``high_id`` (all indexed)."""
    f = query.filter
    ids = (0, high_id)
    if query.start is not None or query.end is not None:
        matches = _matches(conn, query, high_id, _stored(conn, query, dialect))
        if _in_ranges(conn, query, high_id, dialect, matches) <= matches:
            span, params = span_sql(query, high_id, dialect, _TABLE)
            low, high = conn.execute(span, params).fetchone()
            if low is None:
                return [], 0
            ids = (low, high)
    rows, complete = _text_page(conn, query, high_id, ids, dialect)
    if complete and query.after is None:
        return rows, len(rows)
    if f.service or f.min_level or f.matchers or query.start is not None or query.end is not None:
        total = _text_driven(conn, query, high_id, ids, dialect, "count(*)",
                             keyset=False).fetchone()[0]
    else:  # the matches are all there is to count
        total = _one(conn, "SELECT count(*) FROM logs_fts WHERE logs_fts MATCH ?1 "
                           "AND rowid <= ?2", [_match(query), high_id])
    return rows, total
