"""Live metric subscriptions: one producer per subscriber, a bounded queue, oldest dropped."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from botmon.runtime.errors import InvalidArgument

__all__ = ["STREAM_METRICS", "Subscription", "Tick", "parse_subscription"]

#: Stream metric name (CONTRACT.md §9) -> key of GetMetricValues.
STREAM_METRICS = {
    "cpu_usage": "cpu.usage_percent",
    "memory_usage": "memory.usage_percent",
    "disk_usage": "disk.usage_percent",
    "network_bytes_sent": "network.bytes_sent",
    "network_bytes_received": "network.bytes_received",
    "load_average_1m": "cpu.load_average_1m",
    "requests_per_second": "requests.rate_per_second",
    "average_latency_ms": "requests.average_latency_ms",
    "active_sessions": "sessions.active",
    "active_conversations": "conversations.active",
    "error_rate": "requests.error_rate",
}

_MAX_INTERVAL = 3600.0


@dataclass(frozen=True)
class Tick:
    """The values of one tick for the subscribed metrics."""

    time: float
    values: list[tuple[str, float]]


def parse_subscription(metrics: Sequence[str], interval: float) -> tuple[list[str], float]:
    """Validated metric names (all when empty) and interval (1 s when 0)."""
    names: list[str] = []
    for raw in metrics:
        for name in (part.strip() for part in raw.split(",")):
            if not name:
                continue
            if name not in STREAM_METRICS:
                raise InvalidArgument(f"unknown metric {name!r}; known metrics: "
                                      f"{', '.join(STREAM_METRICS)}", field="metrics")
            if name not in names:
                names.append(name)
    if interval == 0:
        interval = 1.0
    if not (math.isfinite(interval) and 1.0 <= interval <= _MAX_INTERVAL):
        raise InvalidArgument(f"interval_seconds must be between 1 and {_MAX_INTERVAL:g}; "
                              f"got {interval}", field="interval_seconds")
    return names or list(STREAM_METRICS), interval


class Subscription:
    """Reads values every ``interval`` into a queue of ``size`` ticks; a slow reader loses
    the oldest ticks (counted in ``dropped``) and never slows the producer or anyone else."""

    def __init__(self, names: list[str], interval: float, size: int,
                 read: Callable[[], Awaitable[tuple[dict[str, float], float]]]):
        self.names = names
        self.interval = interval
        self.read = read
        self.queue: deque[Tick] = deque()
        self.size = size
        self.dropped = 0
        self._ready = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._failure: BaseException | None = None

    async def _produce(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        try:
            while True:
                values, sample_time = await self.read()
                if len(self.queue) >= self.size:
                    self.queue.popleft()
                    self.dropped += 1
                self.queue.append(Tick(sample_time, [(n, values[STREAM_METRICS[n]])
                                                     for n in self.names]))
                self._ready.set()
                next_at += self.interval
                if next_at < loop.time():
                    next_at = loop.time() + self.interval
                await asyncio.sleep(next_at - loop.time())
        except Exception as exc:
            self._failure = exc
            self._ready.set()

    async def ticks(self) -> AsyncIterator[Tick]:
        """Ticks as the reader takes them (``dropped`` is current while one is handled);
        the producer stops when the reader goes away."""
        self._task = asyncio.create_task(self._produce(), name="metrics-subscription")
        try:
            while True:
                await self._ready.wait()
                if self._failure is not None and not self.queue:
                    raise self._failure
                self._ready.clear()
                while self.queue:
                    yield self.queue.popleft()
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
