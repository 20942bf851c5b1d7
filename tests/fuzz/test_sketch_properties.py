"""Properties of the metrics service's percentile sketch (``services/metrics/sketch.py``).

The sketch has no public surface of its own, so these tests use the domain
module directly: for any latencies the service accepts (0 to 86 400 000 ms),
every quantile is within 1 % of the exact one; merging is associative,
commutative and equal to sketching the concatenation, in Python and in the
PostgreSQL function that replicas merge with; the serialised forms round-trip.
"""

from __future__ import annotations

import asyncio
import math

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.metrics.postgres_store import PostgresMetricsStore
from services.metrics.sketch import RELATIVE_ACCURACY, Sketch

#: The range RecordEvents accepts for ``duration_ms`` (services/metrics/events.py).
MAX_MS = 86_400_000.0

# Exact zeros, the smallest and largest values, and everything between, with repeats.
latency = st.one_of(
    st.just(0.0),
    st.floats(min_value=1e-6, max_value=MAX_MS, allow_nan=False),
    st.sampled_from([1e-6, 0.001, 1.0, 999.999, 1000.0, MAX_MS]),
)
latencies = st.lists(latency, max_size=300)
quantile = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


def sketch_of(values) -> Sketch:
    sketch = Sketch()
    for value in values:
        sketch.add(value)
    return sketch


def same(a: Sketch, b: Sketch) -> bool:
    return a.zero == b.zero and {k: v for k, v in a.bins.items() if v} == \
        {k: v for k, v in b.bins.items() if v}


def merged(*sketches: Sketch) -> Sketch:
    out = Sketch()
    for sketch in sketches:
        out.merge(sketch)
    return out


@settings(max_examples=200, deadline=None)
@given(values=latencies.filter(bool), qs=st.lists(quantile, min_size=1, max_size=8))
def test_every_quantile_is_within_one_percent(values, qs):
    sketch = sketch_of(values)
    ordered = sorted(values)
    assert sketch.count == len(values)
    for q, got in zip(qs, sketch.quantiles(qs), strict=True):
        want = ordered[math.floor(q * (len(ordered) - 1))]
        assert abs(got - want) <= RELATIVE_ACCURACY * want, (q, want, got)


@settings(max_examples=100, deadline=None)
@given(value=latency, count=st.integers(1, 10**9), q=quantile)
def test_weighted_add_is_many_adds(value, count, q):
    heavy = Sketch()
    heavy.add(value, count)
    assert heavy.count == count
    (got,) = heavy.quantiles([q])
    assert abs(got - value) <= RELATIVE_ACCURACY * value


def test_empty_sketch_answers_zero():
    assert Sketch().quantiles([0.0, 0.5, 1.0]) == [0.0, 0.0, 0.0]
    assert Sketch.from_flat(Sketch().to_flat()).count == 0


@settings(max_examples=150, deadline=None)
@given(a=latencies, b=latencies, c=latencies)
def test_merge_is_associative_commutative_and_exact(a, b, c):
    sa, sb, sc = sketch_of(a), sketch_of(b), sketch_of(c)
    whole = sketch_of(a + b + c)
    assert same(merged(merged(sa, sb), sc), whole)
    assert same(merged(sa, merged(sb, sc)), whole)
    assert same(merged(sc, sb, sa), whole)
    assert same(merged(sa, sb), merged(sb, sa))
    # Merging the stored form (what the SQLite store does) is the same merge.
    flat = Sketch.from_flat(sa.to_flat())
    flat.merge_flat(sb.to_flat())
    assert same(flat, merged(sa, sb))


@settings(max_examples=150, deadline=None)
@given(values=latencies)
def test_serialised_forms_round_trip(values):
    sketch = sketch_of(values)
    flat = sketch.to_flat()
    assert all(-(2**63) <= v < 2**63 for v in flat)  # fits BIGINT / int64
    assert same(Sketch.from_flat(flat), sketch)
    assert list(Sketch.flat_from_bytes(sketch.to_bytes())) == flat
    assert same(Sketch.from_flat(Sketch.flat_from_bytes(sketch.to_bytes())), sketch)
    assert Sketch.from_flat(flat).quantiles([0.5, 0.99]) == sketch.quantiles([0.5, 0.99])


@pytest.fixture
def merge_sql(postgres_url):
    """A database with the metrics schema (and so ``metrics_sketch_merge``) installed."""
    async def install() -> None:
        store = PostgresMetricsStore(postgres_url, pool_size=1)
        await store.open()
        await store.close()

    asyncio.run(install())
    return postgres_url


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=latencies, b=latencies)
def test_postgres_merge_equals_python_merge(merge_sql, a, b):
    sa, sb = sketch_of(a), sketch_of(b)

    async def merge_in_sql() -> list[int]:
        conn = await asyncpg.connect(merge_sql, timeout=10)
        try:
            return list(await conn.fetchval("SELECT metrics_sketch_merge($1::bigint[], "
                                            "$2::bigint[])", sa.to_flat(), sb.to_flat(),
                                            timeout=10))
        finally:
            await conn.close()

    assert same(Sketch.from_flat(asyncio.run(merge_in_sql())), sketch_of(a + b))
