"""The error summary from per-minute rollups: exact at the period's edge, after retention,
and for a store written before the rollups existed."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from botmon.logs.v1 import logs_service_pb2 as pb
from services.logs.config import LogsSettings, parse_retention
from services.logs.sqlite_store import SqliteLogStore
from tests.logs.support import entry, now

DAY = 86_400.0


@pytest.fixture
def logs_settings() -> LogsSettings:
    return LogsSettings(retention=parse_retention("error=2d,default=30d"), retention_interval=0.2)


async def _summary(logs, period: str):
    return (await logs.stub.GetErrorSummary(pb.GetErrorSummaryRequest(period=period),
                                            timeout=30)).summary


async def test_the_summary_is_exact_at_the_edge_of_its_period_and_after_retention(logs,
                                                                                   store_url):
    t = now()
    hour = 3600.0
    await logs.write([
        # Either side of the one-hour edge, within one minute of it.
        entry("error", "api", "just inside", t - hour + 5, {"error_type": "db"}),
        entry("error", "api", "just outside", t - hour - 5, {"error_type": "db"}),
        entry("error", "api", "inside", t - 600, {"error_type": {"code": 7}}),
        entry("error", "jobs", "no type", t - 30),
        entry("error", "jobs", "null type", t - 30, {"error_type": None}),
        entry("error", "jobs", "three days", t - 3 * DAY, {"error_type": "db"}),
        entry("warn", "api", "not an error", t - 30, {"error_type": "db"}),
    ])
    summary = await _summary(logs, "1h")
    assert summary.total_errors == 4
    assert dict(summary.errors_by_type) == {"db": 1, '{"code": 7}': 1, "unknown_error": 2}
    assert dict(summary.errors_by_service) == {"api": 2, "jobs": 2}
    # Retention removes the three-day-old error with its rollup.
    for _ in range(200):
        if (await logs.list(q="three")).total == 0:
            break
        await asyncio.sleep(0.05)
    week = await _summary(logs, "7d")
    assert week.total_errors == 5 and dict(week.errors_by_type)["db"] == 2
    if store_url.startswith("sqlite"):  # the emptied rollup went with its line
        conn = sqlite3.connect(store_url.split(":///", 1)[1])
        assert conn.execute("SELECT count(*) FROM logs_error_minutes WHERE errors = 0"
                            ).fetchone()[0] == 0
        conn.close()


async def test_a_store_without_rollups_is_rolled_up_when_opened(tmp_path):
    path = tmp_path / "botmon.db"
    t = int(now() * 1e9)
    store = SqliteLogStore(path)
    await store.open()
    await store.insert([(t - i * 10**9, 3, f"svc{i % 2}", "boom", '{"error_type":"x"}', 80)
                        for i in range(10)] + [(t, 1, "svc0", "fine", None, 80)])
    await store.close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE logs_error_minutes")  # as a store of the previous version
    conn.close()
    store = SqliteLogStore(path)
    await store.open()
    try:
        counts = await store.error_counts(t - 3600 * 10**9)
        assert sorted((c.service, c.error_type, c.count) for c in counts) == [
            ("svc0", "x", 5), ("svc1", "x", 5)]
    finally:
        await store.close()
