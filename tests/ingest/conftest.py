"""Fixtures of the ingest tests: a running suite (logs service and gateway) for sync clients.

The OpenTelemetry SDK's exporters and Promtail-style pushes are synchronous
clients, so the suite runs on its own loop thread (:class:`tests.fuzz.live.ThreadedSuite`),
one per module; tests tell their entries apart by service name.
"""

from __future__ import annotations

import httpx
import pytest

from botmon.runtime.config import Settings
from tests.fuzz.live import ThreadedSuite


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    settings = Settings.from_env({}, data_dir=tmp_path_factory.mktemp("ingest"))
    with ThreadedSuite(settings, ("logs",)) as running:
        yield running


@pytest.fixture
def http():
    with httpx.Client(timeout=10) as client:
        yield client
