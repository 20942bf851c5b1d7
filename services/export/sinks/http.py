"""How a destination's HTTP answer becomes a :class:`SinkError`: the retryable statuses as data."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping

from services.export.sinks.base import SinkError

__all__ = ["RETRYABLE_STATUSES", "retry_after", "retryable", "status_error"]

#: Worth resending unchanged: a timeout, throttling and server-side failures, and refused
#: credentials, which an operator fixes (a rotated key) without the backlog being lost.
RETRYABLE_STATUSES = frozenset({401, 403, 408, 429, 500, 502, 503, 504})


def retryable(status: int) -> bool:
    return status in RETRYABLE_STATUSES or status >= 500


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), if any."""
    raw = headers.get("Retry-After") or headers.get("retry-after")
    if not raw:
        return None
    raw = raw.strip()
    if raw.isdigit():
        return float(raw)
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def status_error(destination: str, status: int, headers: Mapping[str, str],
                 reason: str = "") -> SinkError:
    """The whole-batch failure for an HTTP ``status``; never carries request headers."""
    detail = f"{destination} answered HTTP {status}" + (f": {reason[:200]}" if reason else "")
    again = retryable(status)
    return SinkError(detail, retryable=again, retry_after=retry_after(headers) if again else None)
