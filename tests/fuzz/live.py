"""A :class:`~tests.harness.Suite` served from its own event loop thread, for sync clients.

Schemathesis and Hypothesis drive requests synchronously (``requests``); the
suite's gRPC servers and Sanic gateway keep running on a loop in a background
thread meanwhile, exactly as they do in a process of their own.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any

from botmon.runtime.config import Settings
from tests.harness import Suite

__all__ = ["ThreadedSuite"]

#: Seconds the suite may take to start or stop.
STARTUP_TIMEOUT = 60.0


class ThreadedSuite:
    """``with ThreadedSuite(settings, components) as suite:`` — a running :class:`Suite`."""

    def __init__(self, settings: Settings, components: tuple[str, ...], **options: Any):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="suite-loop",
                                       daemon=True)
        self.suite = Suite(settings, components, **options)

    def run(self, coro: Coroutine, timeout: float = STARTUP_TIMEOUT) -> Any:
        """Run ``coro`` on the suite's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __enter__(self) -> Suite:
        self.thread.start()
        try:
            self.run(self.suite.__aenter__())
        except BaseException:
            self._stop_loop()
            raise
        return self.suite

    def __exit__(self, *exc: object) -> None:
        try:
            self.run(self.suite.__aexit__(None, None, None))
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(STARTUP_TIMEOUT)
        self.loop.close()
