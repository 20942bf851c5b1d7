"""What a list or tail asks for: validated filters, order, page size and cursor.

Semantics shared by ``ListLogs`` and ``TailLogs``:

- ``level`` is a minimum severity (``warn`` matches warn and error); empty or
  ``all`` matches every level.
- ``q`` matches entries whose message contains every word of ``q`` (words are
  runs of letters and digits, compared case-insensitively), which is what the
  SQLite FTS5 index and PostgreSQL's ``simple`` text search both answer.
- ``metadata`` matchers are exact: ``{"user_id": "user_456"}`` matches the
  string ``"user_456"``; a value that reads as a JSON number or boolean (``150``,
  ``true``) also matches that number or boolean. A dotted key (``http.status``)
  reaches into nested objects.
- The time range is half-open, ``[start, end)``.

A cursor is opaque to clients: base64 of the position of the last entry
returned (timestamp, id), the highest id visible when the first page was read
(so later pages never include entries stored after it, and ``total`` stays the
total of the first page), and a fingerprint of the query, so that a cursor used
with different filters is refused instead of silently skipping entries.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botmon.runtime.errors import InvalidArgument
from services.logs.levels import NAMES, at_least, parse_level
from services.logs.row import Row

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "LogFilter", "LogQuery", "Position", "build_filter",
           "build_query", "words"]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_Q_CHARS = 256
MAX_Q_WORDS = 16
MAX_MATCHERS = 16
#: Positions are 64-bit integers in both stores.
INT64 = 2**63
_WORD = re.compile(r"[^\W_]+")
_NUMBER = re.compile(r"-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?")


def words(text: str) -> list[str]:
    """The lower-cased words of ``text`` (runs of letters and digits)."""
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class Matcher:
    """``metadata.<path> == value``, with the JSON readings of ``value`` as alternatives."""

    path: tuple[str, ...]
    text: str
    alternatives: tuple[Any, ...]

    @property
    def values(self) -> tuple[Any, ...]:
        return (self.text, *self.alternatives)

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        value: Any = metadata
        for key in self.path:
            if not isinstance(value, Mapping) or key not in value:
                return False
            value = value[key]
        if isinstance(value, bool):
            return value in self.alternatives and any(isinstance(a, bool) for a in self.alternatives)
        if isinstance(value, str):
            return value == self.text
        return isinstance(value, int | float) and value in [
            a for a in self.alternatives if not isinstance(a, bool)]


def _matcher(key: str, text: str) -> Matcher:
    path = tuple(key.split("."))
    if not key or any(not part for part in path) or '"' in key:
        raise InvalidArgument(f"metadata key {key!r} is not valid: use names like user_id or "
                              "http.status (dots reach into nested objects, no quotes)")
    alternatives: tuple[Any, ...] = ()
    if _NUMBER.fullmatch(text):
        try:
            alternatives = (json.loads(text),)
        except ValueError:
            # More digits than Python reads (4300): no stored number can equal it.
            alternatives = ()
    elif text in ("true", "false"):
        alternatives = (text == "true",)
    return Matcher(path, text, alternatives)


@dataclass(frozen=True)
class LogFilter:
    """Which entries match: minimum level, service, words of ``q``, metadata matchers."""

    min_level: int | None = None
    service: str = ""
    q: str = ""
    terms: tuple[str, ...] = ()
    matchers: tuple[Matcher, ...] = ()

    @property
    def levels(self) -> tuple[int, ...]:
        """Stored levels that match (all four when there is no level filter)."""
        return at_least(self.min_level or 0)

    @property
    def level_name(self) -> str:
        return "all" if self.min_level is None else NAMES[self.min_level]

    def matches(self, row: Row) -> bool:
        """Whether a new entry matches (the tail's test, equal to what a list returns)."""
        if self.min_level is not None and row.level < self.min_level:
            return False
        if self.service and row.service != self.service:
            return False
        if self.terms:
            present = set(words(row.message))
            if not all(term in present for term in self.terms):
                return False
        if self.matchers:
            metadata = row.metadata_object()
            return all(m.matches(metadata) for m in self.matchers)
        return True


def build_filter(level: str, service: str, q: str, metadata: Mapping[str, str]) -> LogFilter:
    """Validate filter parameters; raises :class:`InvalidArgument` saying what to fix."""
    min_level = None
    if level and level.strip().lower() != "all":
        min_level = parse_level(level)
        if min_level is None:
            raise InvalidArgument(f"level {level[:40]!r} is not a level: use all, debug, info, "
                                  "warn or error (a minimum severity)")
    if len(q) > MAX_Q_CHARS:
        raise InvalidArgument(f"q is {len(q)} characters; the limit is {MAX_Q_CHARS}")
    terms = tuple(dict.fromkeys(words(q)))
    if q.strip() and not terms:
        raise InvalidArgument("q must contain at least one word (letters or digits)")
    if len(terms) > MAX_Q_WORDS:
        raise InvalidArgument(f"q has {len(terms)} words; the limit is {MAX_Q_WORDS}")
    if len(metadata) > MAX_MATCHERS:
        raise InvalidArgument(f"{len(metadata)} metadata matchers; the limit is {MAX_MATCHERS}")
    matchers = tuple(_matcher(k, v) for k, v in sorted(metadata.items()))
    return LogFilter(min_level, service.strip(), q.strip(), terms, matchers)


@dataclass(frozen=True)
class Position:
    """Where a page ended: the last entry's (ts, id) and the snapshot's highest id."""

    ts: int
    id: int
    high_id: int


@dataclass(frozen=True)
class LogQuery:
    """A validated list query."""

    filter: LogFilter
    start: int | None = None
    end: int | None = None
    order: str = "desc"
    limit: int = DEFAULT_LIMIT
    after: Position | None = None

    def fingerprint(self) -> str:
        f = self.filter
        canonical = json.dumps([f.min_level, f.service, f.terms,
                                [[list(m.path), m.text] for m in f.matchers],
                                self.start, self.end, self.order])
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def cursor(self, position: Position) -> str:
        """The opaque cursor of the page after ``position``."""
        raw = json.dumps([position.ts, position.id, position.high_id, self.fingerprint()],
                         separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _position(cursor: str, fingerprint: str) -> Position:
    bad = InvalidArgument("cursor is not a cursor of this API: pass the next_cursor of the "
                          "previous page unchanged, or omit it to start from the first page")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        ts, last_id, high_id, fp = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise bad from None
    if not all(isinstance(v, int) and not isinstance(v, bool) and -INT64 <= v < INT64
               for v in (ts, last_id, high_id)):
        raise bad
    if fp != fingerprint:
        raise InvalidArgument("cursor belongs to a different query: keep level, service, q, "
                              "metadata, start_time, end_time and order as they were for the "
                              "first page, or omit cursor to start over")
    return Position(ts, last_id, high_id)


def build_query(log_filter: LogFilter, *, start: int | None, end: int | None, order: str,
                limit: int, cursor: str) -> LogQuery:
    """Validate list parameters; raises :class:`InvalidArgument` saying what to fix."""
    order = (order or "desc").strip().lower()
    if order not in ("asc", "desc"):
        raise InvalidArgument(f"order must be asc or desc, got {order[:20]!r}")
    if limit == 0:
        limit = DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidArgument(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    if start is not None and end is not None and start >= end:
        raise InvalidArgument("start_time must be before end_time (the range is "
                              "[start_time, end_time))")
    query = LogQuery(log_filter, start, end, order, limit)
    if cursor:
        return LogQuery(log_filter, start, end, order, limit,
                        _position(cursor.strip(), query.fingerprint()))
    return query
