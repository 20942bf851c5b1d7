"""The latest value to every watcher of a stream, none of whom can hold up the others."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Generic, TypeVar

__all__ = ["Broadcast"]

T = TypeVar("T")

#: Values a watcher may fall behind by before the oldest is dropped; a watcher
#: only ever needs the newest one.
DEPTH = 4


class Broadcast(Generic[T]):
    """Hands each published value to every :meth:`watch`; a slow watcher skips old ones."""

    def __init__(self) -> None:
        self.latest: T | None = None
        self._queues: set[asyncio.Queue[T | None]] = set()

    def __len__(self) -> int:
        return len(self._queues)

    async def watch(self) -> AsyncIterator[T]:
        """The latest value (once there is one), then each new one until :meth:`end`."""
        queue: asyncio.Queue[T | None] = asyncio.Queue(maxsize=DEPTH)
        self._queues.add(queue)
        try:
            if self.latest is not None:
                queue.put_nowait(self.latest)
            while (value := await queue.get()) is not None:
                yield value
        finally:
            self._queues.discard(queue)

    def publish(self, value: T) -> None:
        self.latest = value
        for queue in self._queues:
            self._offer(queue, value)

    def end(self) -> None:
        """End every :meth:`watch` (on shutdown, so streams do not hold up the drain)."""
        for queue in self._queues:
            self._offer(queue, None)

    @staticmethod
    def _offer(queue: asyncio.Queue[T | None], item: T | None) -> None:
        if queue.full():
            queue.get_nowait()
        queue.put_nowait(item)
