"""Cumulative counters and histograms turned into increases per export, for destinations
whose counters are deltas (Datadog counts, CloudWatch sums).

The first sight of a series that began before this process started sets a
baseline and sends nothing (its earlier increase was never seen, so it cannot be
told apart from history); a series that began since is sent whole. A reset (a
new start time, or a value that went down) starts again from zero. A destination
acknowledges each delta once it is sent, so a resent snapshot sends no series twice.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from services.export.sinks.base import MetricFamily, MetricSample

__all__ = ["Delta", "Deltas"]

_Key = tuple[str, tuple[tuple[str, str], ...]]


@dataclass(frozen=True, slots=True)
class Delta:
    """The increase of one series over ``interval_s`` seconds ending at ``timestamp_ns``.

    ``values`` is ``(value,)`` for a counter and ``(count, sum, *bucket counts)`` for a
    histogram (bucket counts cumulative by upper bound, as the buckets are).
    """

    key: _Key
    start_ns: int
    timestamp_ns: int
    interval_s: float
    values: tuple[float, ...]
    totals: tuple[float, ...]


def _totals(family: MetricFamily, sample: MetricSample) -> tuple[float, ...]:
    if family.kind == "histogram":
        return (float(sample.count), sample.sum, *(float(b.count) for b in sample.buckets))
    return (sample.value,)


class Deltas:
    """The last acknowledged totals of every series, by name and labels."""

    def __init__(self, since_ns: int | None = None):
        self._since = time.time_ns() if since_ns is None else since_ns
        self._last: dict[_Key, tuple[int, int, tuple[float, ...]]] = {}

    def delta(self, family: MetricFamily, sample: MetricSample) -> Delta | None:
        """The increase to send now, or None (a baseline, or already acknowledged)."""
        key = (family.name, tuple(sorted(sample.labels.items())))
        totals = _totals(family, sample)
        previous = self._last.get(key)
        if previous is None and family.start_ns < self._since:
            self._last[key] = (family.start_ns, family.timestamp_ns, totals)
            return None
        if previous is not None and family.timestamp_ns <= previous[1]:
            return None
        if previous is None or previous[0] != family.start_ns or len(previous[2]) != len(totals) \
                or any(now < before for now, before in zip(totals, previous[2], strict=True)):
            since, values = family.start_ns, totals
        else:
            since = previous[1]
            values = tuple(now - before for now, before in zip(totals, previous[2], strict=True))
        interval = max(1e-9, (family.timestamp_ns - since) / 1e9)
        return Delta(key, family.start_ns, family.timestamp_ns, interval, values, totals)

    def acknowledge(self, deltas: Sequence[Delta]) -> None:
        for delta in deltas:
            self._last[delta.key] = (delta.start_ns, delta.timestamp_ns, delta.totals)
