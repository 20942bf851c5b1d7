"""Error figures from the logs service's error-level entries, or from requests without it."""

from __future__ import annotations

import asyncio
import logging

import grpc

from botmon.logs.v1 import logs_service_pb2
from botmon.runtime.channels import Backends, call_metadata
from services.metrics.application import ErrorFigures, errors_from_requests
from services.metrics.store import MetricsStore

__all__ = ["ErrorSource"]

log = logging.getLogger("botmon.metrics.errors")

#: The logs service keeps 30 days by default: its 30d summary is "the errors in the store".
_TOTAL_PERIOD = "30d"
#: Cap on the logs call, below the caller's own deadline, so a slow logs service
#: degrades the figures to "requests" instead of failing the whole answer.
_MAX_WAIT = 2.0


class ErrorSource:
    """Asks the logs service (``GetErrorSummary``); falls back to status >= 500 requests."""

    def __init__(self, backends: Backends, store: MetricsStore):
        self.backends = backends
        self.store = store
        self._warned = False

    async def figures(self, now: float) -> ErrorFigures:
        try:
            return await self._from_logs()
        except grpc.aio.AioRpcError as exc:
            if not self._warned:
                log.warning("error figures come from requests: the logs service answered %s",
                            exc.code().name, extra={"details": exc.details()})
                self._warned = True
            return await errors_from_requests(self.store, now)

    async def _from_logs(self) -> ErrorFigures:
        stub = self.backends.stub("logs")
        timeout = min(self.backends.deadline, _MAX_WAIT)
        hour, total = await asyncio.gather(*(
            stub.GetErrorSummary(logs_service_pb2.GetErrorSummaryRequest(period=period),
                                 timeout=timeout, metadata=call_metadata())
            for period in ("1h", _TOTAL_PERIOD)))
        last = total.summary.last_error_time
        self._warned = False
        return ErrorFigures(
            total=total.summary.total_errors,
            rate_per_hour=float(hour.summary.total_errors),
            last_error=last.seconds + last.nanos * 1e-9 if total.summary.HasField(
                "last_error_time") else None,
            source="logs",
        )
