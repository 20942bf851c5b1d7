"""SQLite ``q`` searches planned from whichever index is the more selective.

Two ways to answer a search:

- **index-driven** (:func:`services.logs.sql.list_sql`): walk the
  ``(service, level, ts)`` / ``(level, ts)`` ranges the other filters allow and
  test each entry against the full-text matches (bounded to the id span of
  those ranges, :func:`services.logs.sql.span_sql`). Its cost follows the rows
  in the ranges — a million for a search with no other filter.
- **text-driven**: walk the full-text matches (``logs_fts`` first, forced by
  ``CROSS JOIN``) and look each entry up by id. Its cost follows the matches —
  one for a pasted request id.

The choice compares the two counts, measured rather than guessed and each
capped by the other so that measuring never costs more than the cheaper plan:
the matches (a ``count`` over the full-text index, stopping at the rows the
other filters allow as ``logs_counts`` says), then, with a time range, the
rows in the ranges (stopping past the matches).

A text-driven page does not sort every match: it takes the first ``n``
matches in id order and reads the page index-driven within the time bound they
give (:func:`services.logs.sql.bounded`). Fewer than ``n`` are all the matches,
and are the page. Either way the result is exact.
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


def _text_driven(conn: sqlite3.Connection, query: LogQuery, high_id: int, dialect: Dialect,
                 select: str, keyset: bool, tail: str = "") -> sqlite3.Cursor:
    params: list[Any] = [_match(query), high_id]
    where = search_conditions(query, high_id, dialect, params, keyset=keyset, terms=False)
    return conn.execute(f"SELECT {select} FROM {_JOIN} WHERE logs_fts MATCH ?1 "
                        f"AND logs_fts.rowid <= ?2 AND {where}{tail}", params)


def _index_driven(conn: sqlite3.Connection, query: LogQuery, high_id: int,
                  dialect: Dialect) -> tuple[str, list[Any], str, list[Any]] | None:
    """Count and page statements of the index-driven plan; None when nothing can match."""
    id_span = None
    f = query.filter
    # The span's min/max reads every row the indexed filters allow: worth it only
    # when service or time narrow them.
    if f.service or query.start is not None or query.end is not None:
        span, params = span_sql(query, high_id, dialect, _TABLE)
        low, high = conn.execute(span, params).fetchone()
        if low is None:
            return None
        id_span = (low, high)
    sql = list_sql(query, high_id, dialect, _TABLE, id_span)
    return sql.count, sql.count_params, sql.page, sql.page_params


def _rows(cursor: sqlite3.Cursor) -> list[Row]:
    return [Row(r[0], r[1], r[2], r[3], r[4], r[5]) for r in cursor]


def _text_page(conn: sqlite3.Connection, query: LogQuery, high_id: int,
               dialect: Dialect) -> tuple[list[Row], bool]:
    """The page of the text-driven plan, and whether it holds every match past the cursor."""
    n = query.limit + 1
    desc = query.order == "desc"
    first = _rows(_text_driven(conn, query, high_id, dialect, _COLUMNS, keyset=True,
                               tail=f" ORDER BY logs_fts.rowid {'DESC' if desc else 'ASC'} "
                                    f"LIMIT {n}"))
    narrowed = bounded(query, first)
    if narrowed is None:
        first.sort(key=lambda r: (r.ts, r.id), reverse=desc)
        return first, True
    plan = _index_driven(conn, narrowed, high_id, dialect)
    if plan is None:  # cannot happen: the first matches are within the bound
        raise RuntimeError("matches vanished within one snapshot")
    return _rows(conn.execute(plan[2], plan[3])), False


def search(conn: sqlite3.Connection, query: LogQuery, high_id: int,
           dialect: Dialect) -> tuple[list[Row], int]:
    """The page (up to ``limit + 1`` rows) and exact total of a ``q`` search, inside the
    caller's read transaction, over entries with id ≤ ``high_id`` (all indexed)."""
    f = query.filter
    if query.start is not None or query.end is not None:
        # Only a time range narrows the id span, and with it what the index-driven plan
        # takes from the full-text index: without one that plan tests the ranges against
        # every match, which costs more than looking every match up.
        matches = _matches(conn, query, high_id, _stored(conn, query, dialect))
        if _in_ranges(conn, query, high_id, dialect, matches) <= matches:
            plan = _index_driven(conn, query, high_id, dialect)
            if plan is None:
                return [], 0
            total = _one(conn, plan[0], plan[1])
            return _rows(conn.execute(plan[2], plan[3])), total
    rows, complete = _text_page(conn, query, high_id, dialect)
    if complete and query.after is None:
        return rows, len(rows)
    if f.service or f.min_level or f.matchers or query.start is not None or query.end is not None:
        total = _text_driven(conn, query, high_id, dialect, "count(*)",
                             keyset=False).fetchone()[0]
    else:  # the matches are all there is to count
        total = _one(conn, "SELECT count(*) FROM logs_fts WHERE logs_fts MATCH ?1 "
                           "AND rowid <= ?2", [_match(query), high_id])
    return rows, total
