"""Per-minute buckets are kept BOTMON_METRICS_MINUTE_RETENTION_DAYS (7) and then removed."""

from __future__ import annotations

import asyncio
import sqlite3
import time

from botmon.metrics.v1 import metrics_pb2
from botmon.metrics.v1 import metrics_service_pb2 as pb

DAY = 86400


def _minute_rows(path) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [start for (start,) in conn.execute(
            "SELECT start FROM metrics_buckets WHERE level = 60 ORDER BY start")]


def _request(ts: float) -> metrics_pb2.Event:
    event = metrics_pb2.Event(type="request", method="GET", route="/x", status=200,
                              duration_ms=5.0)
    event.timestamp.FromNanoseconds(int(ts * 1e9))
    return event


async def test_minute_buckets_older_than_the_retention_are_removed(start_metrics, tmp_path):
    path = tmp_path / "botmon.db"
    now = time.time()
    # Just inside the 7 days when ingested (so accepted), outside them a few seconds later;
    # and a recent one that stays.
    ageing, recent = now - 7 * DAY + 5, now - 60
    async with start_metrics(store_url=f"sqlite:///{path}", compaction_interval=0.5) as (_, stub):
        reply = await stub.RecordEvents(pb.RecordEventsRequest(
            events=[_request(ageing), _request(recent)]), timeout=10)
        assert reply.accepted == 2
        assert len(_minute_rows(path)) == 2
        for _ in range(100):  # eventually, within a generous bound: its start passes 7 days
            if len(_minute_rows(path)) == 1:
                break
            await asyncio.sleep(0.1)
        rows = _minute_rows(path)
        # The hour and day rollups keep the old request: only its minute row went.
        month = (await stub.GetPerformanceMetrics(
            pb.GetPerformanceMetricsRequest(period="30d", resolution="day"), timeout=10))
    assert rows == [int(recent // 60 * 60)]
    assert month.performance.throughput.total_requests == 2
