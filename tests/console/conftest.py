"""Fixtures of the console tests: a whole suite on its own thread, and a Chromium.

Selenium is synchronous, so the suite (``tests.harness.Suite``: every component
in-process, real gRPC and the Sanic gateway) runs on an event loop in a thread of
its own; tests talk to it over HTTP like the browser does.
"""

from __future__ import annotations

import asyncio
import os
import threading

import httpx
import pytest

from botmon.runtime.config import Settings
from tests.console.chromium import CHROMEDRIVER, CHROMIUM, browser
from tests.harness import Suite


class SuiteThread:
    """A Suite running on an event loop in a daemon thread until ``close()``."""

    def __init__(self, settings: Settings, **options):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="suite", daemon=True)
        self.thread.start()
        self.suite = Suite(settings, **options)
        self._call(self.suite.__aenter__())
        self.url = self.suite.url
        self.http = httpx.Client(base_url=self.suite.base, timeout=10)

    def _call(self, coro, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def headers(self, role: str) -> dict[str, str]:
        return self.suite.headers(role)

    def token(self, role: str) -> str:
        return self.suite.tokens[role]

    def close(self) -> None:
        self.http.close()
        self._call(self.suite.__aexit__(None, None, None))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def chrome(suite):
    """One headless Chromium for the module's tests (a fresh profile); each module that uses
    it defines ``suite``."""
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.skip("Debian's chromium and chromium-driver are not installed (.ci/run installs them)")
    with browser() as driver:
        yield driver
