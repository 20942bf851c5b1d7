"""Live metric subscriptions fed by the host samples as they are taken.

Ticks follow samples: the collector announces each new sample to the
:class:`StreamHub`, which at once offers it to every subscriber whose interval
has elapsed, so a tick's timestamp is as old as the delivery only. One
:class:`Tick` object per selection of metrics and sample is shared by its
subscribers (and so is the response built from it). Each subscriber has a
bounded queue; a slow reader loses its oldest ticks, counted per update in
``dropped``, and never slows the hub or anyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence

from botmon.runtime.errors import InvalidArgument

__all__ = ["STREAM_METRICS", "StreamHub", "Subscription", "Tick", "parse_subscription"]

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


class Tick:
    """The values of one sample for one selection of metrics; ``rendered`` holds the
    response built once for every subscriber that has dropped nothing."""

    __slots__ = ("rendered", "time", "values")

    def __init__(self, time: float, values: list[tuple[str, float]]):
        self.time = time
        self.values = values
        self.rendered: object | None = None


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
    """One subscriber: its selection, interval and queue of at most ``size`` ticks."""

    def __init__(self, names: list[str], interval: float, size: int):
        self.names = names
        self.key = tuple(names)
        self.interval = interval
        self.size = size
        self.queue: deque[Tick] = deque()
        #: Updates (one per metric of a tick) dropped because the reader was too slow.
        self.dropped = 0
        #: Sample time the next tick is due at: the schedule advances by ``interval``
        #: per tick, so an interval that is no multiple of the sample interval is kept
        #: on average by the nearest samples.
        self.next_time: float | None = None
        self._ready = asyncio.Event()

    def due(self, sample_time: float, slack: float) -> bool:
        """Whether a sample taken at ``sample_time`` is the next one to send."""
        return self.next_time is None or sample_time >= self.next_time - slack

    def offer(self, tick: Tick) -> None:
        if len(self.queue) >= self.size:
            self.dropped += len(self.queue.popleft().values)
        self.queue.append(tick)
        if self.next_time is None or tick.time - self.next_time >= self.interval:
            # The first tick, or samples stalled: restart the schedule from this one.
            self.next_time = tick.time + self.interval
        else:
            self.next_time += self.interval
        self._ready.set()

    async def ticks(self) -> AsyncIterator[Tick]:
        """Ticks as the reader takes them (``dropped`` is current while one is handled)."""
        while True:
            while not self.queue:
                self._ready.clear()
                await self._ready.wait()
            yield self.queue.popleft()


class StreamHub:
    """Offers each sample to the subscribers due for it.

    ``read()`` gives every stream metric's value by GetMetricValues key and the
    time of the sample they go with (None while there are no figures yet); it
    must not wait, since it runs on the sample's way to every subscriber.
    ``slack`` (half the sample interval) lets a sample a little early for a
    subscriber's interval still count, so jitter never skips one.
    """

    def __init__(self, read: Callable[[], tuple[dict[str, float], float] | None], slack: float):
        self.read = read
        self.slack = slack
        self.subscriptions: set[Subscription] = set()

    @contextlib.contextmanager
    def subscribe(self, names: list[str], interval: float, size: int) -> Iterator[Subscription]:
        """A subscription offered the latest sample at once, then each one due."""
        subscription = Subscription(names, interval, size)
        current = self.read()
        if current is not None:
            subscription.offer(_tick(subscription.key, *current))
        self.subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            self.subscriptions.discard(subscription)

    def publish(self) -> int:
        """Offer the latest sample to every subscriber due for it; how many were."""
        if not self.subscriptions:
            return 0
        current = self.read()
        if current is None:
            return 0
        values, sample_time = current
        shared: dict[tuple[str, ...], Tick] = {}
        offered = 0
        for subscription in self.subscriptions:
            if not subscription.due(sample_time, self.slack):
                continue
            tick = shared.get(subscription.key)
            if tick is None:
                tick = shared[subscription.key] = _tick(subscription.key, values, sample_time)
            subscription.offer(tick)
            offered += 1
        return offered


def _tick(names: tuple[str, ...], values: dict[str, float], sample_time: float) -> Tick:
    return Tick(sample_time, [(name, values[STREAM_METRICS[name]]) for name in names])
