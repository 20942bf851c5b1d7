"""Fixtures for the logs service: the real service on SQLite or PostgreSQL, and a client."""

from __future__ import annotations

import pytest

from botmon.logs.v1 import logs_service_pb2_grpc
from services.logs.__main__ import create_server
from services.logs.config import LogsSettings
from tests.conftest import suite_channel
from tests.logs.support import Logs

#: Settings that keep background work out of the way unless a test asks for it.
QUIET = LogsSettings(retention_interval=3600.0)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    """The store of each test run: SQLite under the test's directory, or a fresh PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'botmon.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def logs_settings() -> LogsSettings:
    """The logs service's own settings; override the fixture to change them."""
    return QUIET


@pytest.fixture
async def logs(make_settings, store_url, logs_settings):
    """The logs service on the parametrised store, without health or metrics beside it."""
    settings = make_settings(store_url=store_url, health_target="127.0.0.1:9",
                             metrics_target="127.0.0.1:9", grpc_deadline=2.0)
    server = await create_server(settings, address="127.0.0.1:0", logs_settings=logs_settings)
    async with server:
        async with suite_channel(f"127.0.0.1:{server.port}", settings) as channel:
            yield Logs(server, channel, logs_service_pb2_grpc.LogsServiceStub(channel))
