"""The error summary: error-level entries over a period, by type and by service."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from botmon.runtime.errors import InvalidArgument
from services.logs.request_counts import RequestCounts
from services.logs.store import LogStore

__all__ = ["PERIODS", "ErrorSummary", "summarise_errors"]

#: Accepted periods and their length in seconds.
PERIODS = {"1h": 3600, "24h": 86_400, "7d": 7 * 86_400, "30d": 30 * 86_400}
DEFAULT_PERIOD = "24h"
UNKNOWN_TYPE = "unknown_error"


@dataclass
class ErrorSummary:
    """Figures of one summary."""

    period: str
    total_errors: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    by_service: dict[str, int] = field(default_factory=dict)
    total_requests: int = 0
    requests_source: str = ""
    last_error: int | None = None

    @property
    def error_rate(self) -> float:
        return self.total_errors / self.total_requests if self.total_requests else 0.0


def period_of(raw: str) -> str:
    period = (raw or DEFAULT_PERIOD).strip().lower()
    if period not in PERIODS:
        raise InvalidArgument(f"period must be one of {', '.join(PERIODS)}, got {raw[:20]!r}")
    return period


async def summarise_errors(store: LogStore, requests: RequestCounts, raw_period: str,
                           now: int | None = None) -> ErrorSummary:
    """Error-level entries in the last ``period`` and the requests reported in it."""
    period = period_of(raw_period)
    now = time.time_ns() if now is None else now
    counts = await store.error_counts(now - PERIODS[period] * 10**9)
    by_type: Counter[str] = Counter()
    by_service: Counter[str] = Counter()
    for count in counts:
        by_type[count.error_type or UNKNOWN_TYPE] += count.count
        by_service[count.service] += count.count
    total_requests, source = await requests.total(period)
    return ErrorSummary(period=period, total_errors=sum(by_service.values()),
                        by_type=dict(by_type), by_service=dict(by_service),
                        total_requests=total_requests, requests_source=source,
                        last_error=await store.last_error())
