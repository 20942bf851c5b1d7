"""A ListLogs page as one JSON document, rendered from the stored rows (``LOG_PAGE_FORMAT_JSON``).

The document is what the gateway's JSON mapping (``gateway.convert``) makes of
the page's messages — the same fields in the same order, ``null`` for an unset
time or metadata, 64-bit integers as numbers, times and metadata numbers as
:mod:`botmon.runtime.json_form` writes them — without building a ``LogEntry`` and
a ``Struct`` per entry here and mapping them to JSON in the gateway, which together
cost more than the query of a 100-entry page. Metadata keys are sorted, so both
stores give the same bytes for the same entries (PostgreSQL's ``jsonb`` keeps keys
in an order of its own).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import orjson

from botmon.runtime.json_form import as_struct, rfc3339
from services.logs.levels import NAMES
from services.logs.query import LogFilter, LogQuery
from services.logs.row import Row

__all__ = ["CONTENT_TYPE", "render_page"]

CONTENT_TYPE = "application/json"

_SORTED = orjson.OPT_SORT_KEYS


def _metadata(text: str | None) -> orjson.Fragment | None:
    if not text:
        return None
    value = orjson.loads(text)
    if not value:
        return None  # an empty Struct is an unset field
    return orjson.Fragment(orjson.dumps(as_struct(value), option=_SORTED))


def _time(ns: int | None) -> str | None:
    return None if ns is None else rfc3339(*divmod(ns, 1_000_000_000))


def render_page(rows: Sequence[Row], total: int, log_filter: LogFilter, query: LogQuery,
                metadata: Mapping[str, str], next_cursor: str) -> bytes:
    """The page of ``query`` (its ``rows``, ``total`` and ``next_cursor``) as JSON bytes;
    ``metadata`` is the query's metadata matchers as the request gave them."""
    logs = [{"timestamp": _time(r.ts), "level": NAMES[r.level], "service": r.service,
             "message": r.message, "metadata": _metadata(r.metadata), "id": r.id}
            for r in rows]
    echo = {"level": log_filter.level_name, "limit": query.limit, "service": log_filter.service,
            "q": log_filter.q, "order": query.order, "start_time": _time(query.start),
            "end_time": _time(query.end), "metadata": dict(sorted(metadata.items()))}
    return orjson.dumps({"logs": logs, "total": total, "query": echo,
                         "next_cursor": next_cursor})
