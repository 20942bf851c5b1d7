"""The platform's request rate, read from the metrics service for the LLM probe."""

from __future__ import annotations

import grpc

from botmon.metrics.v1 import metrics_service_pb2
from botmon.runtime.channels import Backends, call_metadata

__all__ = ["PlatformTraffic"]


class PlatformTraffic:
    """``requests.rate_per_second`` of ``GetApplicationMetrics``; 0 with a reason when unreadable."""

    def __init__(self, backends: Backends, *, timeout: float):
        self.backends = backends
        # Below the probe's own timeout, so a slow metrics service costs the LLM
        # result only this figure, not the whole probe.
        self.timeout = min(backends.deadline, timeout * 0.8)

    async def __call__(self) -> tuple[float, str]:
        try:
            response = await self.backends.stub("metrics").GetApplicationMetrics(
                metrics_service_pb2.GetApplicationMetricsRequest(),
                timeout=self.timeout, metadata=call_metadata())
        except grpc.aio.AioRpcError as exc:
            return 0.0, (f"requests_per_second unknown (reported as 0): the metrics service "
                         f"answered {exc.code().name}")
        return response.application.requests.rate_per_second, ""
