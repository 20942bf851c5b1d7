"""Aggregates of events per time bucket, and the batch one store transaction writes."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.metrics.sketch import Sketch

__all__ = ["DURATION_BOUNDS", "LEVELS", "Batch", "Bucket", "ConversationDelta",
           "SessionDelta", "rollup"]

#: Bucket widths in seconds by name; "second" buckets feed the live figures.
LEVELS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}

#: Upper bounds (seconds) of the exported duration histogram's buckets.
DURATION_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Bucket:
    """Request figures of one time bucket; merging two buckets is exact."""

    __slots__ = ("bytes", "count", "err_4xx", "err_504", "err_5xx", "max_ms", "messages",
                 "min_ms", "sketch", "sum_ms")

    def __init__(self) -> None:
        self.count = 0
        self.sum_ms = 0.0
        self.min_ms: float | None = None
        self.max_ms: float | None = None
        self.bytes = 0
        self.err_4xx = 0
        self.err_5xx = 0
        self.err_504 = 0
        self.messages = 0
        self.sketch = Sketch()

    def add_request(self, status: int, duration_ms: float, size: int) -> None:
        self.count += 1
        self.sum_ms += duration_ms
        if self.min_ms is None or duration_ms < self.min_ms:
            self.min_ms = duration_ms
        if self.max_ms is None or duration_ms > self.max_ms:
            self.max_ms = duration_ms
        self.bytes += size
        if status >= 500:
            self.err_5xx += 1
            if status == 504:
                self.err_504 += 1
        elif status >= 400:
            self.err_4xx += 1
        self.sketch.add(duration_ms)

    def merge(self, other: Bucket) -> None:
        self.count += other.count
        self.sum_ms += other.sum_ms
        if other.min_ms is not None and (self.min_ms is None or other.min_ms < self.min_ms):
            self.min_ms = other.min_ms
        if other.max_ms is not None and (self.max_ms is None or other.max_ms > self.max_ms):
            self.max_ms = other.max_ms
        self.bytes += other.bytes
        self.err_4xx += other.err_4xx
        self.err_5xx += other.err_5xx
        self.err_504 += other.err_504
        self.messages += other.messages
        self.sketch.merge(other.sketch)


@dataclass
class SessionDelta:
    """What a batch says about one session; times are Unix seconds."""

    started: float | None = None
    ended: float | None = None
    last_seen: float = 0.0


@dataclass
class ConversationDelta:
    """What a batch says about one conversation; times are Unix seconds."""

    started: float | None = None
    completed: float | None = None
    messages: int | None = None
    last_seen: float = 0.0


@dataclass
class Batch:
    """Everything one store transaction adds: buckets, counters, sessions, conversations."""

    #: Per-second buckets keyed by Unix second; minute and rollup rows derive from them.
    seconds: dict[int, Bucket] = field(default_factory=dict)
    #: Monotonic counters keyed by (name, labels), e.g. ("requests", "GET|200").
    counters: dict[tuple[str, str], float] = field(default_factory=dict)
    sessions: dict[str, SessionDelta] = field(default_factory=dict)
    conversations: dict[str, ConversationDelta] = field(default_factory=dict)
    last_server_error: float | None = None
    events: int = 0

    def bucket(self, second: int) -> Bucket:
        bucket = self.seconds.get(second)
        if bucket is None:
            bucket = self.seconds[second] = Bucket()
        return bucket

    def count(self, name: str, labels: str, amount: float = 1) -> None:
        key = (name, labels)
        self.counters[key] = self.counters.get(key, 0) + amount

    def merge(self, other: Batch) -> None:
        for second, bucket in other.seconds.items():
            self.bucket(second).merge(bucket)
        for key, amount in other.counters.items():
            self.counters[key] = self.counters.get(key, 0) + amount
        for sid, delta in other.sessions.items():
            mine = self.sessions.setdefault(sid, SessionDelta())
            mine.started = _least(mine.started, delta.started)
            mine.ended = _greatest(mine.ended, delta.ended)
            mine.last_seen = max(mine.last_seen, delta.last_seen)
        for cid, delta in other.conversations.items():
            mine = self.conversations.setdefault(cid, ConversationDelta())
            mine.started = _least(mine.started, delta.started)
            if delta.completed is not None and (mine.completed is None
                                                or delta.completed >= mine.completed):
                mine.completed, mine.messages = delta.completed, delta.messages
            mine.last_seen = max(mine.last_seen, delta.last_seen)
        self.last_server_error = _greatest(self.last_server_error, other.last_server_error)
        self.events += other.events


def rollup(buckets: dict[int, Bucket], width: int) -> dict[int, Bucket]:
    """Buckets keyed by start merged into buckets ``width`` seconds wide."""
    out: dict[int, Bucket] = {}
    for start, bucket in buckets.items():
        key = start - start % width
        target = out.get(key)
        if target is None:
            target = out[key] = Bucket()
        target.merge(bucket)
    return out


def _least(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _greatest(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)
