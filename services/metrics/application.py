"""Figures of the platform computed from the ingested events."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from services.metrics.buckets import Bucket
from services.metrics.store import MetricsStore, People

__all__ = ["ErrorFigures", "Figures", "compute", "errors_from_requests"]

#: Window of requests.rate_per_second and requests.average_latency_ms.
RATE_WINDOW = 60
#: Window of requests.p99_latency_ms and requests.error_rate.
TAIL_WINDOW = 300


@dataclass(frozen=True)
class ErrorFigures:
    """Errors: ``source`` is "logs" (error-level logs) or "requests" (status >= 500)."""

    total: int
    rate_per_hour: float
    last_error: float | None
    source: str


@dataclass(frozen=True)
class Figures:
    """Everything GetApplicationMetrics reports except errors."""

    now: float
    uptime_seconds: int
    #: "platform" or "botmon": what uptime_seconds measures (services.metrics.uptime).
    uptime_source: str
    requests_total: int
    rate_per_second: float
    average_latency_ms: float
    p99_latency_ms: float
    error_rate: float
    people: People


def _midnight(now: float) -> float:
    return now - now % 86400


async def compute(store: MetricsStore, now: float, idle: float,
                  uptime: tuple[int, str]) -> Figures:
    """Read the store once for every figure (windows end at ``now``)."""
    second = int(now)
    recent, counters, people = await asyncio.gather(
        store.buckets(1, second - TAIL_WINDOW + 1, second + 1),
        store.counters(),
        store.people(now, _midnight(now), idle))
    minute, tail = Bucket(), Bucket()
    for start, bucket in recent.items():
        tail.merge(bucket)
        if start > second - RATE_WINDOW:
            minute.merge(bucket)
    return Figures(
        now=now,
        uptime_seconds=uptime[0],
        uptime_source=uptime[1],
        requests_total=int(sum(v for (name, _), v in counters.items() if name == "requests")),
        rate_per_second=minute.count / RATE_WINDOW,
        average_latency_ms=minute.sum_ms / minute.count if minute.count else 0.0,
        p99_latency_ms=tail.sketch.quantiles([0.99])[0],
        error_rate=tail.err_5xx / tail.count if tail.count else 0.0,
        people=people,
    )


async def errors_from_requests(store: MetricsStore, now: float) -> ErrorFigures:
    """Error figures counted from requests with status >= 500."""
    counters, meta, last_hour = await asyncio.gather(
        store.counters(), store.meta(), store.buckets(60, int(now) - 3600 + 1, int(now) + 1))
    total = sum(v for (name, labels), v in counters.items()
                if name == "requests" and int(labels.rsplit("|", 1)[1]) >= 500)
    return ErrorFigures(
        total=int(total),
        rate_per_hour=float(sum(b.err_5xx for b in last_hour.values())),
        last_error=meta.get("last_server_error"),
        source="requests",
    )
