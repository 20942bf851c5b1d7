"""Fixtures of the ingest tests: a running suite (logs service and gateway) for sync clients.

The OpenTelemetry SDK's exporters and Promtail-style pushes are synchronous
clients, so the suite runs on its own loop thread (:class:`tests.fuzz.live.ThreadedSuite`),
one per module and store; tests tell their entries apart by service name.
"""

from __future__ import annotations

import contextlib

import httpx
import pytest

from botmon.runtime.config import Settings
from tests.conftest import scratch_database
from tests.fuzz.live import ThreadedSuite


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def suite(request, tmp_path_factory):
    """The logs service and the gateway, on SQLite and on a fresh PostgreSQL database."""
    with contextlib.ExitStack() as stack:
        overrides = {}
        if request.param == "postgresql":
            server = request.getfixturevalue("postgres_server_url")
            overrides["store_url"] = stack.enter_context(scratch_database(server))
        settings = Settings.from_env({}, data_dir=tmp_path_factory.mktemp("ingest"),
                                     **overrides)
        yield stack.enter_context(ThreadedSuite(settings, ("logs",)))


@pytest.fixture
def http():
    with httpx.Client(timeout=10) as client:
        yield client
