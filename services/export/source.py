"""What the export loop ships, read from the logs and metrics services over gRPC only."""

from __future__ import annotations

import json

from botmon.logs.v1 import logs_service_pb2
from botmon.metrics.v1 import metrics_service_pb2
from botmon.runtime.channels import Backends
from services.export.sinks.base import Bucket, LogRecord, MetricFamily, MetricSample

__all__ = ["Source"]


def _ns(stamp) -> int:
    return stamp.seconds * 10**9 + stamp.nanos


class Source:
    """Stored log entries after a position, and the metric catalogue now."""

    def __init__(self, backends: Backends, timeout: float):
        self.backends = backends
        self.timeout = timeout

    async def logs_after(self, position: int, limit: int) -> tuple[list[LogRecord], int]:
        """Up to ``limit`` entries after ``position``, oldest first, and the highest id stored."""
        reply = await self.backends.stub("logs").ReadLogsAfter(
            logs_service_pb2.ReadLogsAfterRequest(after_id=position, page_size=limit),
            timeout=self.timeout)
        loads = json.loads
        records = [LogRecord(position=e.id, timestamp_ns=e.time_unix_nano, level=e.level,
                             service=e.service, message=e.message,
                             metadata=loads(e.metadata_json) if e.metadata_json else {})
                   for e in reply.entries]
        return records, reply.high_id

    async def metric_families(self) -> list[MetricFamily]:
        reply = await self.backends.stub("metrics").ListMetricFamilies(
            metrics_service_pb2.ListMetricFamiliesRequest(), timeout=self.timeout)
        now, start = _ns(reply.sample_time), _ns(reply.start_time)
        return [MetricFamily(
            name=f.name, kind=f.type, help=f.help, unit=f.unit, timestamp_ns=now, start_ns=start,
            samples=[MetricSample(labels=dict(s.labels), value=s.value,
                                  buckets=[Bucket(b.upper_bound, int(b.cumulative_count))
                                           for b in s.buckets],
                                  sum=s.sum, count=int(s.count)) for s in f.samples])
            for f in reply.families]
