"""A mergeable latency sketch with bounded relative error (DDSketch's log buckets).

A value ``x > 0`` falls in bin ``ceil(log_gamma(x))`` with ``gamma = (1 + a) / (1 - a)``;
the bin's representative ``2 gamma^i / (gamma + 1)`` is within ``a`` (1 %) of
every value in it, so any quantile read from the bins is within 1 % of the
value at that rank. Two sketches merge by adding bin counts, which is exact:
merging minute buckets, rollups or replicas never loses accuracy.

Serialised form (SQLite BLOB, PostgreSQL ``bigint[]``): a flat int64 array
``[zero_count, first_bin, count(first_bin), count(first_bin + 1), …]``.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Iterable
from itertools import accumulate

__all__ = ["RELATIVE_ACCURACY", "Sketch"]

#: Guaranteed relative error of every quantile.
RELATIVE_ACCURACY = 0.01
_GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_INV_LOG_GAMMA = 1 / math.log(_GAMMA)
#: Values below this (in ms, i.e. under a nanosecond) are counted as zero.
_MIN_VALUE = 1e-6


class Sketch:
    """Counts of values per logarithmic bin, plus a count of zeros."""

    __slots__ = ("bins", "zero")

    def __init__(self) -> None:
        self.bins: dict[int, int] = {}
        self.zero = 0

    @staticmethod
    def bin_of(value: float) -> int | None:
        """The bin of ``value``, or None for the zero bucket."""
        if value < _MIN_VALUE:
            return None
        return math.ceil(math.log(value) * _INV_LOG_GAMMA)

    def add(self, value: float, count: int = 1) -> None:
        if value < _MIN_VALUE:
            self.zero += count
            return
        key = math.ceil(math.log(value) * _INV_LOG_GAMMA)
        bins = self.bins
        bins[key] = bins.get(key, 0) + count

    def merge(self, other: Sketch) -> None:
        self.zero += other.zero
        bins = self.bins
        for key, count in other.bins.items():
            bins[key] = bins.get(key, 0) + count

    def merge_flat(self, flat: Iterable[int]) -> None:
        """Merge a serialised sketch (the flat int64 layout) without building a Sketch."""
        values = flat if isinstance(flat, list | array) else list(flat)
        if len(values) < 2:
            return
        self.zero += values[0]
        first = values[1]
        bins = self.bins
        for i in range(2, len(values)):
            count = values[i]
            if count:
                key = first + i - 2
                bins[key] = bins.get(key, 0) + count

    @property
    def count(self) -> int:
        return self.zero + sum(self.bins.values())

    def quantiles(self, qs: Iterable[float]) -> list[float]:
        """Values at ranks ``floor(q * (count - 1))`` for each q; 0.0 when empty."""
        qs = list(qs)
        total = self.count
        if total == 0:
            return [0.0 for _ in qs]
        keys = sorted(self.bins)
        cumulative = list(accumulate(self.bins[k] for k in keys))
        out = []
        for q in qs:
            rank = math.floor(min(max(q, 0.0), 1.0) * (total - 1))
            if rank < self.zero:
                out.append(0.0)
                continue
            # First bin whose cumulative count (zeros included) exceeds the rank.
            target = rank - self.zero
            lo, hi = 0, len(cumulative) - 1
            while lo < hi:
                mid = (lo + hi) // 2
                if cumulative[mid] > target:
                    hi = mid
                else:
                    lo = mid + 1
            out.append(2 * _GAMMA ** keys[lo] / (_GAMMA + 1))
        return out

    def to_flat(self) -> list[int]:
        """The flat int64 layout described in the module docstring."""
        if not self.bins:
            return [self.zero, 0]
        first, last = min(self.bins), max(self.bins)
        flat = [0] * (last - first + 3)
        flat[0], flat[1] = self.zero, first
        for key, count in self.bins.items():
            flat[key - first + 2] = count
        return flat

    def to_bytes(self) -> bytes:
        packed = array("q", self.to_flat())
        if sys.byteorder != "little":
            packed.byteswap()
        return packed.tobytes()

    @staticmethod
    def flat_from_bytes(data: bytes) -> array:
        packed = array("q")
        packed.frombytes(data)
        if sys.byteorder != "little":
            packed.byteswap()
        return packed

    @classmethod
    def from_flat(cls, flat: Iterable[int]) -> Sketch:
        sketch = cls()
        sketch.merge_flat(flat)
        return sketch
