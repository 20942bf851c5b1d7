"""The result of one delivery attempt to one channel target."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Outcome"]


@dataclass(frozen=True)
class Outcome:
    """HTTP status or SMTP reply code (0 when none came), and whether to try again."""

    status_code: int
    success: bool
    error: str = ""
    retryable: bool = False

    @classmethod
    def from_http(cls, status: int) -> Outcome:
        """The outcome of an HTTP answer; its body is never kept, since history is shown to
        viewers and a receiver's error page may describe an internal service."""
        if 200 <= status < 300:
            return cls(status, True)
        # Rate limits, timeouts and server errors pass; any other client error will not.
        retryable = status in (408, 425, 429) or status >= 500
        return cls(status, False, f"HTTP {status}", retryable)

    @classmethod
    def failure(cls, error: str, *, status_code: int = 0, retryable: bool = True) -> Outcome:
        return cls(status_code, False, error, retryable)
