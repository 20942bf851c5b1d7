"""Requests reported to the metrics service over a period, for the error rate.

Asks ``GetPerformanceMetrics`` (with the call's deadline) at the coarsest
resolution the metrics service accepts for the period — only the period's
``throughput.total_requests`` is used, and coarser buckets are cheaper to
read. When the metrics service is unreachable, unimplemented or late, the count
is 0 with the reason, and the summary says so rather than failing.
"""

from __future__ import annotations

import logging

import grpc

from botmon.metrics.v1 import metrics_service_pb2
from botmon.runtime.channels import Backends, call_metadata

__all__ = ["RequestCounts"]

log = logging.getLogger("botmon.logs.requests")

#: Tried in this order until the metrics service accepts one for the period.
RESOLUTIONS = ("day", "hour", "minute")


class RequestCounts:
    """Reads request totals from the metrics service."""

    def __init__(self, backends: Backends):
        self.backends = backends
        self._resolution: dict[str, str] = {}

    async def total(self, period: str) -> tuple[int, str]:
        """(requests in ``period``, source): source is "metrics" or "unavailable: <why>"."""
        stub = self.backends.stub("metrics")
        candidates = [self._resolution[period]] if period in self._resolution else RESOLUTIONS
        reason = "metrics service refused every resolution"
        for resolution in candidates:
            try:
                response = await stub.GetPerformanceMetrics(
                    metrics_service_pb2.GetPerformanceMetricsRequest(period=period,
                                                                     resolution=resolution),
                    timeout=self.backends.deadline, metadata=call_metadata())
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                    continue
                reason = f"metrics service answered {exc.code().name}"
                break
            self._resolution[period] = resolution
            return response.performance.throughput.total_requests, "metrics"
        self._resolution.pop(period, None)
        log.warning("error rate computed without request counts: %s", reason,
                    extra={"period": period})
        return 0, f"unavailable: {reason}"
