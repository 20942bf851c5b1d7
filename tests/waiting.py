"""Bounded waits: poll a condition until it holds, or fail saying what was last seen."""

from __future__ import annotations

import asyncio
import inspect
import time

__all__ = ["eventually", "wait_until"]


def wait_until(predicate, what: str, timeout: float, interval: float = 0.1):
    """Call ``predicate()`` until it returns a truthy value; raise naming ``what`` after ``timeout``.

    Any exception counts as "not yet", except an ``AssertionError``, which ends the wait.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            last = predicate()
        except AssertionError:
            raise
        except Exception as exc:  # the thing waited for is not up yet
            last = exc
        if last and not isinstance(last, Exception):
            return last
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not reached within {timeout}s (last: {last!r})")
        time.sleep(interval)


async def eventually(check, within: float = 10.0, interval: float = 0.1):
    """Await ``check()`` (sync or async) until it is truthy and return it; fail after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        last = check()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {within}s; last value: {last!r}")
        await asyncio.sleep(interval)
