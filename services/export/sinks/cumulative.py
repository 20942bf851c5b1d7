"""Cumulative counters and histograms turned into increases per export, for destinations
whose counters are deltas (Datadog counts, CloudWatch sums).

The series of the first snapshot an exporter sees set a baseline and send nothing:
their values count from a point it did not see (the host's counters from its boot, the
platform's from when the store began counting), and sending them whole would count
history as one interval. A series that first appears
in a later snapshot is new since the previous one and is sent whole. A value that
went down is a reset: what it holds now was counted since the previous export. A
destination acknowledges each delta once it is sent, so a resent snapshot sends no
series twice; at most the interval before an exporter's first snapshot goes uncounted.
"""

from __future__ import annotations

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

    def __init__(self):
        self._last: dict[_Key, tuple[int, tuple[float, ...]]] = {}
        self._baseline_ns: int | None = None  # the first snapshot this exporter saw
        self._previous_ns: int | None = None  # the snapshot before the latest one
        self._latest_ns: int | None = None

    def delta(self, family: MetricFamily, sample: MetricSample) -> Delta | None:
        """The increase to send now, or None (a baseline, or already acknowledged)."""
        now = family.timestamp_ns
        if self._baseline_ns is None:
            self._baseline_ns = now
        if self._latest_ns is None or now > self._latest_ns:
            self._previous_ns, self._latest_ns = self._latest_ns, now
        key = (family.name, tuple(sorted(sample.labels.items())))
        totals = _totals(family, sample)
        previous = self._last.get(key)
        if previous is None:
            if now == self._baseline_ns:
                self._last[key] = (now, totals)
                return None
            then = self._previous_ns or self._baseline_ns  # new since the previous snapshot
            return Delta(key, now, (now - then) / 1e9, totals, totals)
        then, before = previous
        if now <= then:
            return None
        if len(before) != len(totals) or any(n < b for n, b in zip(totals, before, strict=True)):
            values = totals  # reset: everything it holds was counted since `then`
        else:
            values = tuple(n - b for n, b in zip(totals, before, strict=True))
        return Delta(key, now, (now - then) / 1e9, values, totals)

    def acknowledge(self, deltas: Sequence[Delta]) -> None:
        for delta in deltas:
            self._last[delta.key] = (delta.timestamp_ns, delta.totals)
