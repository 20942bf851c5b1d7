"""Open WebSockets per subject and per client IP, capped in each gateway process.

``BOTMON_WS_MAX_PER_SUBJECT`` and ``BOTMON_WS_MAX_PER_IP`` bound what one
caller can hold open (each socket is a gRPC stream and a queue). The handshake
of one more is answered 429; the count is taken again once the socket is open,
so handshakes racing past the first check cannot exceed the cap either.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator

__all__ = ["SocketCaps"]


class SocketCaps:
    """Counts of open sockets by subject and by IP, and whether one more may open."""

    def __init__(self, per_subject: int, per_ip: int):
        self.per_subject = per_subject
        self.per_ip = per_ip
        self.by_subject: Counter[str] = Counter()
        self.by_ip: Counter[str] = Counter()

    def refusal(self, subject: str, ip: str) -> str | None:
        """Why ``subject`` at ``ip`` may not open another socket now, or None."""
        if self.by_subject[subject] >= self.per_subject:
            return (f"{subject!r} already has {self.by_subject[subject]} open WebSockets, the "
                    f"most BOTMON_WS_MAX_PER_SUBJECT allows; close one first")
        if self.by_ip[ip] >= self.per_ip:
            return (f"{ip} already has {self.by_ip[ip]} open WebSockets, the most "
                    f"BOTMON_WS_MAX_PER_IP allows; close one first")
        return None

    @contextlib.contextmanager
    def hold(self, subject: str, ip: str) -> Iterator[None]:
        """Count one socket of ``subject`` at ``ip`` while the block runs."""
        self.by_subject[subject] += 1
        self.by_ip[ip] += 1
        try:
            yield
        finally:
            for counts, key in ((self.by_subject, subject), (self.by_ip, ip)):
                counts[key] -= 1
                if counts[key] <= 0:
                    del counts[key]
