"""The SQL of a list query, shared by the SQLite and PostgreSQL stores.

Every entry is indexed by ``(service, level, ts)`` and ``(level, ts)`` (plus
the id, which SQLite keeps in every index and PostgreSQL has as the last key
column). The level is always written as ``level IN (…)`` — every level when the
query has no level filter — so each query is a handful of contiguous index
ranges, one per level:

- ``service`` (+ minimum level) + time → ``(service, level, ts)``;
- otherwise (minimum level) + time → ``(level, ts)``.

``total`` is a ``COUNT(*)`` over those ranges, which the index covers, so it
never reads the table. A page merges the levels' ranges by ``ts, id`` (each
walked in order, the merge stopping after ``n`` rows: SQLite's ``MERGE (UNION
ALL)``, PostgreSQL's ``Merge Append``) instead of sorting every match; the ranges
give positions (``ts``, id) that the index covers, and the table is read for the ``n`` entries
of the page only (not ``n`` per level); a text search (``q``) is
driven from the full-text index instead. The same per-level merge finds the
oldest entries for retention, so no index on ``ts`` alone is needed (one index
fewer to maintain on every insert).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from services.logs import entry_counts
from services.logs.levels import NAMES
from services.logs.query import LogQuery, Matcher
from services.logs.row import Row

__all__ = ["COLUMNS", "Dialect", "ListSql", "bounded", "counted", "list_sql", "oldest_sql",
           "search_conditions", "seed_sql", "span_sql", "stored_total_sql"]

#: Columns read back, in the order ``Row`` is built from.
COLUMNS = "id, ts, level, service, message, metadata"


class Dialect(Protocol):
    """What differs between the stores' SQL."""

    def placeholder(self, index: int) -> str:
        """The placeholder of the ``index``-th (1-based) parameter."""

    def text_search(self, terms: tuple[str, ...], add: Callable[[Any], str],
                    id_span: tuple[int, int] | None) -> str:
        """A condition matching messages that contain every term (ids within ``id_span``)."""

    def metadata(self, matcher: Matcher, add: Callable[[Any], str]) -> str:
        """A condition matching entries whose metadata satisfies ``matcher``."""

    def merged(self, arms: list[str], order: str, n: int) -> str:
        """The first ``n`` rows in ``order`` of the ``arms`` (SELECTs of one index range
        each), merged in the order each range is read, never sorted as a whole."""


@dataclass
class _Params:
    dialect: Dialect
    values: list[Any] = field(default_factory=list)  # appended to, also when passed in

    def add(self, value: Any) -> str:
        self.values.append(value)
        return self.dialect.placeholder(len(self.values))


@dataclass
class ListSql:
    """The statements of one list query and their parameters."""

    count: str
    count_params: list[Any]
    page: str
    page_params: list[Any]


def _conditions(query: LogQuery, high_id: int, params: _Params, dialect: Dialect,
                levels: tuple[int, ...], keyset: bool,
                id_span: tuple[int, int] | None = None) -> str:
    f = query.filter
    where: list[str] = []
    if f.service:
        where.append(f"service = {params.add(f.service)}")
    if len(levels) < len(NAMES) or not f.terms or query.start is not None \
            or query.end is not None:
        # Every level, written out, puts the ts range on the level indexes. A text
        # search over all time needs neither: PostgreSQL would AND a bitmap of every
        # entry with the matches.
        where.append(f"level = {levels[0]}" if len(levels) == 1
                     else f"level IN ({', '.join(map(str, levels))})")
    if query.start is not None:
        where.append(f"ts >= {params.add(query.start)}")
    if query.end is not None:
        where.append(f"ts < {params.add(query.end)}")
    if keyset and query.after is not None:
        # (ts, id) beyond the last entry, written so that the ts bound uses the index.
        op, inclusive = ("<", "<=") if query.order == "desc" else (">", ">=")
        ts = params.add(query.after.ts)
        ts2 = params.add(query.after.ts)
        last = params.add(query.after.id)
        where.append(f"ts {inclusive} {ts} AND (ts {op} {ts2} OR id {op} {last})")
    where.append(f"id <= {params.add(high_id)}")
    if f.terms:
        where.append(dialect.text_search(f.terms, params.add, id_span))
    for matcher in f.matchers:
        where.append(dialect.metadata(matcher, params.add))
    return " AND ".join(where)


def search_conditions(query: LogQuery, high_id: int, dialect: Dialect, values: list[Any], *,
                      keyset: bool = False, terms: bool = True) -> str:
    """The WHERE conditions of ``query`` over entries with id ≤ ``high_id``, numbering
    placeholders after ``values`` (to which the parameters are appended); without the
    text search when ``terms`` is False (a plan that applies it another way)."""
    if not terms:
        query = replace(query, filter=replace(query.filter, terms=()))
    return _conditions(query, high_id, _Params(dialect, values), dialect, query.filter.levels,
                       keyset)


def counted(query: LogQuery) -> bool:
    """Whether ``query`` filters by service and level only, so that ``logs_counts`` gives
    its exact total."""
    f = query.filter
    return not (f.terms or f.matchers or query.start is not None or query.end is not None)


def stored_total_sql(query: LogQuery, high_id: int,
                     dialect: Dialect) -> tuple[str, list[Any]] | None:
    """The exact total from ``logs_counts`` of a query filtering by service and level only
    (None for any other query): the counted entries less those after ``high_id``, which a
    first page's ``high_id`` (its snapshot's newest id) leaves none of."""
    if not counted(query):
        return None
    f = query.filter
    params = _Params(dialect)
    stored = entry_counts.count_sql(f.service, f.levels, params.add)
    if query.after is None:
        # Not even asked: PostgreSQL, before its first ANALYZE of a filled table, scans the
        # whole table for the id range.
        return f"SELECT CAST(({stored}) AS BIGINT)", params.values
    # level + 0 and service || '' keep the planner on the id range (the entries
    # committed after the snapshot, usually none) instead of the level indexes.
    newer = (f"SELECT count(*) FROM logs_entries WHERE id > {params.add(high_id)} "
             f"AND level + 0 IN ({', '.join(map(str, f.levels))})")
    if f.service:
        newer += f" AND service || '' = {params.add(f.service)}"
    return f"SELECT CAST(({stored}) - ({newer}) AS BIGINT)", params.values


def list_sql(query: LogQuery, high_id: int, dialect: Dialect, table: str,
             id_span: tuple[int, int] | None = None) -> ListSql:
    """Count and page statements for ``query`` over entries with id ≤ ``high_id``.

    ``id_span`` (the least and greatest id the other filters allow, see
    :func:`span_sql`) lets the text search skip the parts of the full-text index
    outside it.
    """
    levels = query.filter.levels
    count_params = _Params(dialect)
    count = (f"SELECT count(*) FROM {table} WHERE "
             f"{_conditions(query, high_id, count_params, dialect, levels, False, id_span)}")
    direction = "DESC" if query.order == "desc" else "ASC"
    order = f"ORDER BY ts {direction}, id {direction}"
    page_params = _Params(dialect)
    n = query.limit + 1  # one more than asked tells whether there is a next page
    if len(levels) == 1 or query.filter.terms:
        page = (f"SELECT {COLUMNS} FROM {table} WHERE "
                f"{_conditions(query, high_id, page_params, dialect, levels, True, id_span)} "
                f"{order} LIMIT {n}")
    else:
        # Each level's range yields its positions in order from the index alone, merged
        # (not sorted) into the first n; only the n entries of the page are read from
        # the table, not n per level.
        arms = [f"SELECT ts, id FROM {table} WHERE "
                f"{_conditions(query, high_id, page_params, dialect, (level,), keyset=True)}"
                for level in levels]
        merged = dialect.merged(arms, order, n)
        columns = ", ".join(f"e.{column}" for column in COLUMNS.split(", "))
        page = (f"SELECT {columns} FROM ({merged}) AS m JOIN {table} AS e ON e.id = m.id "
                f"ORDER BY m.ts {direction}, m.id {direction}")
    return ListSql(count, count_params.values, page, page_params.values)


def seed_sql(query: LogQuery, high_id: int, dialect: Dialect,
             table: str) -> tuple[str, list[Any]]:
    """The first ``limit + 1`` matches of ``query`` in id order (its direction), for
    :func:`bounded`."""
    params = _Params(dialect)
    where = _conditions(query, high_id, params, dialect, query.filter.levels, keyset=True)
    direction = "DESC" if query.order == "desc" else "ASC"
    return (f"SELECT {COLUMNS} FROM {table} WHERE {where} ORDER BY id {direction} "
            f"LIMIT {query.limit + 1}", params.values)


def bounded(query: LogQuery, first: list[Row]) -> LogQuery | None:
    """``query`` confined to the time range its page lies in, given its first
    ``limit + 1`` matches in id order; None when they are all its matches.

    Ids follow arrival, and so, mostly, do timestamps: at least ``limit + 1``
    matches are at or after the oldest timestamp of ``first`` (at or before the
    newest, ascending), so the page is within that bound — exact whatever the
    timestamps, narrow when they follow arrival. A search then reads its page from
    the time-ordered indexes instead of sorting every match.
    """
    if len(first) <= query.limit:
        return None
    if query.order == "desc":
        bound = min(r.ts for r in first)
        return replace(query, start=bound if query.start is None else max(query.start, bound))
    bound = max(r.ts for r in first) + 1
    return replace(query, end=bound if query.end is None else min(query.end, bound))


def span_sql(query: LogQuery, high_id: int, dialect: Dialect,
             table: str) -> tuple[str, list[Any]]:
    """Least and greatest id allowed by the indexed filters (service, level, time).

    A common word matches a large share of the full-text index; bounding its
    scan by this id span (ids follow insertion, so a time range is a narrow
    span) keeps a filtered search proportional to the filtered rows.
    """
    params = _Params(dialect)
    bare = LogQuery(replace(query.filter, terms=(), matchers=()), query.start, query.end)
    where = _conditions(bare, high_id, params, dialect, query.filter.levels, keyset=False)
    return f"SELECT min(id), max(id) FROM {table} WHERE {where}", params.values


def oldest_sql(table: str, limit: str) -> str:
    """Ids of the ``limit`` oldest entries (``limit`` is a placeholder), merged per level."""
    parts = [f"SELECT * FROM (SELECT id, ts FROM {table} WHERE level = {level} "
             f"ORDER BY ts, id LIMIT {limit}) AS o{level}" for level in range(len(NAMES))]
    return f"SELECT id FROM ({' UNION ALL '.join(parts)}) AS oldest ORDER BY ts, id LIMIT {limit}"
