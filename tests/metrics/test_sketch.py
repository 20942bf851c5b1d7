"""The latency sketch's guarantee, for any values: quantiles within 1 %, exact merges."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from services.metrics.sketch import Sketch

latencies = st.lists(st.floats(min_value=0.001, max_value=8.64e7, allow_nan=False),
                     min_size=1, max_size=400)


@settings(max_examples=150, deadline=None)
@given(latencies, latencies)
def test_quantiles_within_one_percent_and_merges_exact(a, b):
    left, right, whole = Sketch(), Sketch(), Sketch()
    for v in a:
        left.add(v)
        whole.add(v)
    for v in b:
        right.add(v)
        whole.add(v)
    left.merge(Sketch.from_flat(Sketch.flat_from_bytes(right.to_bytes())))
    assert left.bins == whole.bins and left.zero == whole.zero
    ordered = sorted(a + b)
    qs = (0.0, 0.5, 0.95, 0.99, 1.0)
    for q, got in zip(qs, left.quantiles(qs), strict=True):
        want = ordered[math.floor(q * (len(ordered) - 1))]
        assert abs(got - want) <= 0.01 * want
