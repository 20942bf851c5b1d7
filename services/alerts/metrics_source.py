"""Current metric values, read from the metrics service over gRPC with a deadline."""

from __future__ import annotations

import grpc

from botmon.metrics.v1 import metrics_service_pb2
from botmon.runtime.channels import Backends, call_metadata
from botmon.runtime.errors import Unavailable

__all__ = ["MetricsSource"]


class MetricsSource:
    """One ``GetMetricValues`` call per read; failures become :class:`Unavailable`."""

    def __init__(self, backends: Backends):
        self.backends = backends

    async def values(self, deadline: float | None = None) -> dict[str, float]:
        deadline = min(self.backends.deadline, deadline or self.backends.deadline)
        try:
            response = await self.backends.stub("metrics").GetMetricValues(
                metrics_service_pb2.GetMetricValuesRequest(), timeout=deadline,
                metadata=call_metadata())
        except grpc.aio.AioRpcError as exc:
            raise Unavailable(
                f"the metrics service ({self.backends.settings.target('metrics')}) cannot be "
                f"read: {exc.code().name} {exc.details() or ''}".rstrip()) from None
        return dict(response.values)
