"""The SQL of a list query, shared by the SQLite and PostgreSQL stores.

The shapes are chosen so that each is answered from one index:

- ``service`` (+ minimum level) + time → ``(service, level, ts)``, with the
  level written as ``level IN (…)`` (every level when none is asked for) so
  that each level is one contiguous index range;
- minimum level + time → ``(level, ts)``;
- time only → ``(ts)``.

``total`` is a ``COUNT(*)`` over the same ranges, which the index covers, so it
never reads the table. A page is read as one ``ORDER BY ts, id LIMIT n``
subquery per level merged by a ``UNION ALL`` (each walks its index range in
order and stops after ``n`` rows), instead of sorting every match; a text
search (``q``) is driven from the full-text index instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from services.logs.query import LogQuery, Matcher

__all__ = ["COLUMNS", "Dialect", "ListSql", "list_sql"]

#: Columns read back, in the order ``Row`` is built from.
COLUMNS = "id, ts, level, service, message, metadata"


class Dialect(Protocol):
    """What differs between the stores' SQL."""

    def placeholder(self, index: int) -> str:
        """The placeholder of the ``index``-th (1-based) parameter."""

    def text_search(self, terms: tuple[str, ...], add: Callable[[Any], str]) -> str:
        """A condition matching messages that contain every term."""

    def metadata(self, matcher: Matcher, add: Callable[[Any], str]) -> str:
        """A condition matching entries whose metadata satisfies ``matcher``."""


@dataclass
class _Params:
    dialect: Dialect
    values: list[Any] = field(default_factory=list)

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
                levels: tuple[int, ...] | None, keyset: bool) -> str:
    f = query.filter
    where: list[str] = []
    if f.service:
        where.append(f"service = {params.add(f.service)}")
    if levels is not None:
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
        where.append(dialect.text_search(f.terms, params.add))
    for matcher in f.matchers:
        where.append(dialect.metadata(matcher, params.add))
    return " AND ".join(where)


def _levels(query: LogQuery) -> tuple[int, ...] | None:
    """The level list to spell out, or None when the level needs no condition."""
    f = query.filter
    if f.min_level is None and not f.service:
        return None
    return f.levels


def list_sql(query: LogQuery, high_id: int, dialect: Dialect, table: str) -> ListSql:
    """Count and page statements for ``query`` over entries with id ≤ ``high_id``."""
    levels = _levels(query)
    count_params = _Params(dialect)
    count = (f"SELECT count(*) FROM {table} WHERE "
             f"{_conditions(query, high_id, count_params, dialect, levels, keyset=False)}")
    direction = "DESC" if query.order == "desc" else "ASC"
    order = f"ORDER BY ts {direction}, id {direction}"
    page_params = _Params(dialect)
    n = query.limit + 1  # one more than asked tells whether there is a next page
    if levels is None or len(levels) == 1 or query.filter.terms:
        page = (f"SELECT {COLUMNS} FROM {table} WHERE "
                f"{_conditions(query, high_id, page_params, dialect, levels, keyset=True)} "
                f"{order} LIMIT {n}")
    else:
        parts = [f"SELECT * FROM (SELECT {COLUMNS} FROM {table} WHERE "
                 f"{_conditions(query, high_id, page_params, dialect, (level,), keyset=True)} "
                 f"{order} LIMIT {n}) AS l{level}" for level in levels]
        page = " UNION ALL ".join(parts) + f" {order} LIMIT {n}"
    return ListSql(count, count_params.values, page, page_params.values)
