"""Pages of entries as JSON: a ListLogs page (``LOG_PAGE_FORMAT_JSON``) and a ReadLogsAfter
page (``STORED_ENTRIES_FORMAT_JSON``), rendered from the stored rows.

A ListLogs document is what the gateway's JSON mapping (``gateway.convert``) makes of
the page's messages — the same fields in the same order, ``null`` for an unset time or
metadata, 64-bit integers as numbers, times and metadata numbers as
:mod:`botmon.runtime.json_form` writes them — without building a ``LogEntry`` and a
``Struct`` per entry here and mapping them to JSON in the gateway, which together cost
more than the query of a 100-entry page.

The entries themselves come either from a store that writes them in SQL
(:mod:`services.logs.sqlite_json`: metadata as validation stored it, its numbers made a
Struct's by :func:`struct_numbers` when it may hold any) or from
:func:`entry_objects` and :func:`entry_arrays` here (metadata as the store returns it,
made a Struct's and with its keys sorted, since PostgreSQL's ``jsonb`` writes numbers
and orders keys its own way). Both give the same documents.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import orjson

from botmon.runtime.json_form import as_struct, rfc3339
from services.logs.levels import NAMES
from services.logs.query import LogFilter, LogQuery
from services.logs.row import Row, stored_size

__all__ = ["CONTENT_TYPE", "entry_arrays", "entry_objects", "render_page", "struct_numbers"]

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


def entry_objects(rows: Sequence[Row]) -> bytes:
    """``rows`` as a JSON array of ``LogEntry`` objects."""
    return orjson.dumps([{"timestamp": _time(r.ts), "level": NAMES[r.level],
                          "service": r.service, "message": r.message,
                          "metadata": _metadata(r.metadata), "id": r.id} for r in rows])


def entry_arrays(rows: Sequence[Row]) -> bytes:
    """``rows`` as a JSON array of ``[id, time_unix_nano, level, service, message, metadata,
    size]``, metadata the stored text itself (exact numbers are what an export ships) and
    size as validation counts it (:func:`~services.logs.row.stored_size`)."""
    return orjson.dumps([[r.id, r.ts, NAMES[r.level], r.service, r.message,
                          orjson.Fragment(r.metadata) if r.metadata else None,
                          stored_size(r.service, r.message, r.metadata)] for r in rows])


def struct_numbers(entries: bytes) -> bytes:
    """A JSON array of ``LogEntry`` objects with their metadata numbers as a Struct holds
    them (:func:`~botmon.runtime.json_form.as_struct`), for metadata stored with exact ones
    (OTLP's integers) or whole doubles."""
    objects = orjson.loads(entries)
    for entry in objects:
        if entry["metadata"] is not None:
            entry["metadata"] = as_struct(entry["metadata"])
    return orjson.dumps(objects)


def render_page(entries: bytes, total: int, log_filter: LogFilter, query: LogQuery,
                metadata: Mapping[str, str], next_cursor: str) -> bytes:
    """The page of ``query`` (its ``entries`` as a JSON array, ``total`` and
    ``next_cursor``) as JSON bytes; ``metadata`` is the query's metadata matchers as the
    request gave them."""
    echo = {"level": log_filter.level_name, "limit": query.limit, "service": log_filter.service,
            "q": log_filter.q, "order": query.order, "start_time": _time(query.start),
            "end_time": _time(query.end), "metadata": dict(sorted(metadata.items()))}
    return orjson.dumps({"logs": orjson.Fragment(entries), "total": total, "query": echo,
                         "next_cursor": next_cursor})
