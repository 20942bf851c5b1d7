"""The interface every probe implements, and the probe of a component left unconfigured."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Protocol
from urllib.parse import urlsplit

from botmon.runtime.urls import redact_text
from services.health.probes.result import NOT_CONFIGURED, UNHEALTHY, ProbeResult

__all__ = ["NotConfigured", "Probe", "ProbeError", "describe", "elapsed_ms", "failed", "url_port"]


class ProbeError(Exception):
    """The component answered, but not as it should; the message is the whole reason."""


class Probe(Protocol):
    """Checks one component; raising (or overrunning its timeout) means unhealthy."""

    #: Result type whose defaults stand for "nothing measured".
    result_type: type[ProbeResult]
    #: Port of the probed server, reported even when the probe fails; 0 when none.
    port: int

    async def check(self) -> ProbeResult: ...

    async def close(self) -> None: ...


class NotConfigured:
    """A component that has no URL or path to probe; ``hint`` says how to configure it."""

    port = 0

    def __init__(self, result_type: type[ProbeResult], hint: str):
        self.result_type = result_type
        self.hint = hint

    async def check(self) -> ProbeResult:
        return self.result_type(status=NOT_CONFIGURED, reason=self.hint)

    async def close(self) -> None:
        pass


def failed(probe: Probe, reason: str) -> ProbeResult:
    """An unhealthy result of ``probe`` with no figures."""
    return probe.result_type(status=UNHEALTHY, reason=reason, port=probe.port)


def describe(exc: BaseException) -> str:
    """A one-line reason for a failed probe, with any URL in it redacted (viewers read it)."""
    return redact_text(_reason(exc))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ProbeError):
        return str(exc)
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return "timed out"
    cause = exc.__cause__ or exc.__context__
    if not isinstance(exc, OSError) and isinstance(cause, OSError) and cause.errno:
        exc = cause  # drivers wrap the socket error; its errno says the most
    if isinstance(exc, OSError) and exc.errno:
        # asyncio's "Connect call failed ('127.0.0.1', 5432)" hides the cause; errno names it.
        where = f": {exc.filename}" if exc.filename else ""
        return f"{os.strerror(exc.errno).lower()}{where}"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def elapsed_ms(start: float) -> float:
    """Milliseconds since ``start`` (a ``time.perf_counter()`` reading)."""
    return round((time.perf_counter() - start) * 1000, 3)


def url_port(url: str, default: int) -> int:
    """The port a URL names, or ``default`` for its scheme."""
    try:
        return urlsplit(url).port or default
    except ValueError:
        return default
