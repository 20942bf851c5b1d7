"""In-process fan-out of newly stored entries to live tails.

The ingest path calls :meth:`TailHub.publish` after each commit; it only
filters and appends to per-subscriber bounded buffers, so it never waits for a
reader. A subscriber that reads too slowly loses its oldest buffered entries,
and the loss is counted in ``dropped``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from services.logs.query import LogFilter
from services.logs.row import Row

__all__ = ["Subscription", "TailHub"]


class Subscription:
    """One live tail: its filter, its bounded buffer and its drop count."""

    def __init__(self, log_filter: LogFilter, capacity: int):
        self.filter = log_filter
        self.capacity = capacity
        self.dropped = 0
        self._buffer: deque[Row] = deque()
        self._ready = asyncio.Event()

    def offer(self, rows: list[Row]) -> None:
        matches = self.filter.matches
        buffer = self._buffer
        for row in rows:
            if matches(row):
                if len(buffer) >= self.capacity:
                    buffer.popleft()
                    self.dropped += 1
                buffer.append(row)
        if buffer:
            self._ready.set()

    async def next_batch(self, limit: int) -> list[Row]:
        """Wait for entries and take up to ``limit`` of them, oldest first."""
        while not self._buffer:
            self._ready.clear()
            await self._ready.wait()
        count = min(limit, len(self._buffer))
        return [self._buffer.popleft() for _ in range(count)]


class TailHub:
    """The live tails of this process."""

    def __init__(self, capacity: int = 1000):
        self.capacity = capacity
        self._subscriptions: set[Subscription] = set()
        #: Set whenever a tail starts or ends (the Redis bridge watches it).
        self.changed = asyncio.Event()

    def __len__(self) -> int:
        return len(self._subscriptions)

    @contextmanager
    def subscribe(self, log_filter: LogFilter) -> Iterator[Subscription]:
        subscription = Subscription(log_filter, self.capacity)
        self._subscriptions.add(subscription)
        self.changed.set()
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)
            self.changed.set()

    def publish(self, rows: list[Row]) -> None:
        """Offer newly stored rows to every tail; never blocks."""
        for subscription in tuple(self._subscriptions):
            subscription.offer(rows)

    @property
    def dropped(self) -> int:
        return sum(s.dropped for s in self._subscriptions)
