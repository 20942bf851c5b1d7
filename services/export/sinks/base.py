"""What every destination implements: send a batch of log records or metric families.

A sink knows only its own vendor's wire format. Positions, batching by age,
retries with backoff, leases and counters belong to the export loop, which
calls a sink with batches no larger than the sink's ``max_records`` and
``max_bytes`` (the encoded size estimated in ``LogRecord.size``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple, Protocol

__all__ = [
    "NO_METADATA",
    "Bucket",
    "LogRecord",
    "MetricFamily",
    "MetricSample",
    "SendResult",
    "Sink",
    "SinkError",
    "estimated_size",
]


#: The metadata of an entry that has none; shared, so read-only.
NO_METADATA: Mapping[str, Any] = MappingProxyType({})


def estimated_size(service: str, message: str, metadata: Mapping[str, Any]) -> int:
    """A cheap estimate of an entry's encoded size in bytes, for batch bounds."""
    return 64 + len(service) + len(message) + sum(
        len(k) + len(str(v)) for k, v in metadata.items())


class LogRecord(NamedTuple):
    """One stored log entry, as stored, with its position in the logs store.

    Immutable (a tuple: cheap to build for every entry read); destinations share
    records, so none changes ``metadata``. ``size`` bounds batches by bytes: the size the
    logs service counts the entry as (its texts and a row's overhead), or
    :func:`estimated_size` of an entry read in the messages form; worked out once where
    entries are read. A record made without it, as a test or a single test entry does,
    counts no bytes.
    """

    position: int
    timestamp_ns: int
    level: str  # debug, info, warn, error
    service: str
    message: str
    metadata: Mapping[str, Any] = NO_METADATA
    size: int = 0


@dataclass(frozen=True, slots=True)
class Bucket:
    """A cumulative histogram bucket: ``count`` observations ≤ ``upper_bound``."""

    upper_bound: float
    count: int


@dataclass(frozen=True, slots=True)
class MetricSample:
    """One labelled sample; histograms carry ``buckets``, ``sum`` and ``count``."""

    labels: Mapping[str, str]
    value: float = 0.0
    buckets: Sequence[Bucket] = ()
    sum: float = 0.0
    count: int = 0


@dataclass(frozen=True, slots=True)
class MetricFamily:
    """One series family of the catalogue, sampled at ``timestamp_ns``.

    ``kind`` is ``counter`` (cumulative, monotonic since ``start_ns``), ``gauge``
    (``start_ns`` 0) or ``histogram`` (cumulative buckets since ``start_ns``).
    ``start_ns`` stays the same while the series counts on.
    """

    name: str
    kind: str
    help: str
    unit: str
    timestamp_ns: int
    start_ns: int
    samples: Sequence[MetricSample]


@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome of an accepted batch: indexes of items the destination refused.

    ``retry`` are per-item failures worth resending alone (e.g. a bulk item
    answered 429 or 5xx); ``rejected`` are refused for good (e.g. a mapping
    error) and are counted as failed, never resent.
    """

    retry: tuple[int, ...] = ()
    rejected: tuple[int, ...] = ()


class SinkError(Exception):
    """The whole batch failed; ``retryable`` with an optional ``retry_after`` in seconds."""

    def __init__(self, message: str, *, retryable: bool = True, retry_after: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class Sink(Protocol):
    """A destination; ``name`` is the part after ``export:`` in ``/status``."""

    name: ClassVar[str]
    max_records: ClassVar[int]
    max_bytes: ClassVar[int]

    async def send_logs(self, records: Sequence[LogRecord]) -> SendResult: ...

    async def send_metrics(self, families: Sequence[MetricFamily]) -> SendResult: ...

    async def close(self) -> None: ...
