"""RFC 3339 UTC timestamps with ``Z``, as every payload and the API use them."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["ZERO_TIME", "rfc3339"]

#: Go's zero time, which Alertmanager sends as ``endsAt`` of a firing alert.
ZERO_TIME = "0001-01-01T00:00:00Z"


def rfc3339(ts: float | None) -> str:
    """Format Unix seconds; None gives Go's zero time."""
    if ts is None:
        return ZERO_TIME
    text = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")
