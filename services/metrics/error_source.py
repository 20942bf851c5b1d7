"""Error figures from the logs service's error-level entries, or from requests without it.

The logs service is read in the background, at most every ``interval`` seconds
while the figures are read, so no refresh of the application figures (let alone a stream tick) waits on it:
a refresh takes the figures last fetched, or those counted from requests with
status >= 500 while there are none. Only the first read of a process waits for
the logs service, briefly, so a service that just started reports "logs" when
it can.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable

import grpc

from botmon.logs.v1 import logs_service_pb2
from botmon.runtime.channels import Backends, call_metadata
from services.metrics.application import ErrorFigures, errors_from_requests
from services.metrics.store import MetricsStore

__all__ = ["ErrorSource"]

log = logging.getLogger("botmon.metrics.errors")

#: The logs service keeps 30 days by default: its 30d summary is "the errors in the store".
_TOTAL_PERIOD = "30d"
#: Deadline of the logs calls, which run in the background only.
_MAX_WAIT = 2.0
#: How long the very first read waits for the logs service before using requests.
_FIRST_WAIT = 0.5


class ErrorSource:
    """Asks the logs service (``GetErrorSummary``) in the background; falls back to
    status >= 500 requests. ``on_change`` is called when the fetched figures change."""

    def __init__(self, backends: Backends, store: MetricsStore, *, interval: float,
                 on_change: Callable[[], None]):
        self.backends = backends
        self.store = store
        self.interval = interval
        self.on_change = on_change
        #: The logs service's figures as last fetched; None while it does not answer.
        self.latest: ErrorFigures | None = None
        #: Fetches started (each is two GetErrorSummary calls).
        self.fetches = 0
        self._attempted = -math.inf
        self._task: asyncio.Task | None = None
        self._waited = False
        self._warned = False

    def poll(self) -> None:
        """Start a fetch in the background if the last one is ``interval`` old."""
        if time.monotonic() - self._attempted >= self.interval and not self._fetching():
            self._attempted = time.monotonic()
            self._task = asyncio.create_task(self._fetch(), name="metrics-error-figures")

    async def figures(self, now: float) -> ErrorFigures:
        """The figures at hand (see :meth:`poll`)."""
        self.poll()
        if self.latest is None and self._fetching() and not self._waited:
            self._waited = True
            await asyncio.wait({self._task}, timeout=_FIRST_WAIT)
        if self.latest is not None:
            return self.latest
        return await errors_from_requests(self.store, now)

    def _fetching(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _fetch(self) -> None:
        self.fetches += 1
        try:
            fetched = await self._from_logs()
        except grpc.aio.AioRpcError as exc:
            if not self._warned:
                log.warning("error figures come from requests: the logs service answered %s",
                            exc.code().name, extra={"details": exc.details()})
                self._warned = True
            fetched = None
        except Exception as exc:
            log.error("reading the error figures failed", extra={"error": repr(exc)})
            fetched = None
        else:
            self._warned = False
        if fetched != self.latest:
            self.latest = fetched
            self.on_change()

    async def _from_logs(self) -> ErrorFigures:
        stub = self.backends.stub("logs")
        timeout = min(self.backends.deadline, _MAX_WAIT)
        hour, total = await asyncio.gather(*(
            stub.GetErrorSummary(logs_service_pb2.GetErrorSummaryRequest(period=period),
                                 timeout=timeout, metadata=call_metadata())
            for period in ("1h", _TOTAL_PERIOD)))
        last = total.summary.last_error_time
        return ErrorFigures(
            total=total.summary.total_errors,
            rate_per_hour=float(hour.summary.total_errors),
            last_error=last.seconds + last.nanos * 1e-9 if total.summary.HasField(
                "last_error_time") else None,
            source="logs",
        )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
