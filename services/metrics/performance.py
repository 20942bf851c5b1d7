"""Latency, throughput and error shares over a period, with one point per bucket."""

from __future__ import annotations

from dataclasses import dataclass

from botmon.runtime.errors import InvalidArgument
from services.metrics.buckets import LEVELS, Bucket
from services.metrics.store import MetricsStore

__all__ = ["PERIODS", "RESOLUTIONS", "Performance", "Point", "choose", "measure"]

#: Period name -> seconds.
PERIODS = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}

#: Period -> resolutions that give a readable number of points (minute data is kept
#: 7 days, and 1 440 points is the most a chart needs); the first is the default,
#: "hour" wherever it is allowed, as CONTRACT.md says.
RESOLUTIONS = {
    "1h": ("minute",),
    "24h": ("hour", "minute"),
    "7d": ("hour", "day"),
    "30d": ("hour", "day"),
}

_DEFAULT_PERIOD = "24h"


def choose(period: str, resolution: str) -> tuple[str, str]:
    """Validate the pair (empty means default) or raise InvalidArgument saying what is allowed."""
    period = period or _DEFAULT_PERIOD
    if period not in PERIODS:
        raise InvalidArgument(f"period must be one of {', '.join(PERIODS)}; got {period!r}",
                              field="period")
    allowed = RESOLUTIONS[period]
    if not resolution:
        return period, allowed[0]
    if resolution not in LEVELS or resolution == "second":
        raise InvalidArgument("resolution must be one of minute, hour, day; "
                              f"got {resolution!r}", field="resolution")
    if resolution not in allowed:
        raise InvalidArgument(f"resolution {resolution!r} is not allowed with period {period!r}; "
                              f"allowed: {', '.join(sorted(allowed, key=LEVELS.get))}",
                              field="resolution")
    return period, resolution


@dataclass(frozen=True)
class Point:
    """One bucket ``[start, start + width)`` and the seconds of it that have elapsed."""

    start: int
    seconds: float
    bucket: Bucket


@dataclass(frozen=True)
class Performance:
    """The whole period merged, and its points oldest first."""

    period: str
    resolution: str
    whole: Bucket
    seconds: float
    points: list[Point]


async def measure(store: MetricsStore, period: str, resolution: str, now: float) -> Performance:
    """Read the buckets of ``period`` at ``resolution``, the current partial bucket last."""
    width = LEVELS[resolution]
    count = PERIODS[period] // width
    last = int(now) - int(now) % width
    first = last - (count - 1) * width
    found = await store.buckets(width, first, last + width)
    whole = Bucket()
    points = []
    for start in range(first, last + width, width):
        bucket = found.get(start) or Bucket()
        whole.merge(bucket)
        points.append(Point(start, float(width) if start < last else max(now - start, 1.0),
                            bucket))
    seconds = sum(p.seconds for p in points)
    return Performance(period, resolution, whole, seconds, points)
