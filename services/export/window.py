"""The log entries read last, shared by every destination of the process.

Destinations mostly read the same entries at about the same time. Every page the
logs service serves goes into one window that each destination reads from, so
the service serves (and this process decodes) an entry about once rather than once
per destination. A destination that fell behind the window reads pages of its own.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from operator import attrgetter

from services.export.sinks.base import LogRecord

__all__ = ["Window"]

_position = attrgetter("position")


class Window:
    """Every stored entry with a position in (``start``, ``end``], oldest first: at most
    ``size``, or more while the destination that read last has yet to have them."""

    def __init__(self, size: int):
        self.size = size
        self.records: list[LogRecord] = []
        self.start = self.end = -1  # covers nothing yet
        #: The highest position stored when the last page was read.
        self.high = 0
        #: The last page reached ``high``: nothing more was stored then.
        self.complete = False
        self.read_at = float("-inf")

    def covers(self, position: int) -> bool:
        return self.start <= position <= self.end

    def after(self, position: int, limit: int) -> list[LogRecord]:
        """Up to ``limit`` entries after ``position``, which the window covers."""
        first = bisect_right(self.records, position, key=_position)
        return self.records[first:first + limit]

    def fresh(self, now: float, within: float) -> bool:
        """Nothing was stored beyond ``end`` when it was read, less than ``within`` s ago."""
        return self.complete and now - self.read_at < within

    def add(self, after: int, records: Sequence[LogRecord], high: int, limit: int,
            now: float, reader: int) -> None:
        """A page read after ``after`` with ``limit`` for a destination at position
        ``reader``: it extends the window when it starts at ``end``, and replaces it
        otherwise."""
        if after != self.end:
            self.records, self.start = [], after
        self.records.extend(records)
        self.complete = len(records) < limit
        # A page short of its limit holds every entry up to the highest stored.
        self.end = max(after, high) if self.complete else records[-1].position
        self.high, self.read_at = high, now
        # The oldest go first, never what the reader has not had yet: the page just read,
        # and what lies between the reader and the old end (trimmed to the size alone,
        # a destination inside the window lost those entries).
        extra = min(len(self.records) - self.size,
                    bisect_right(self.records, reader, key=_position))
        if extra > 0:
            self.start = self.records[extra - 1].position
            del self.records[:extra]
