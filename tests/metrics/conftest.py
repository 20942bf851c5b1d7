"""Metrics services on free ports, over SQLite or a real PostgreSQL, for the tests here."""

from __future__ import annotations

import contextlib

import pytest

from botmon.metrics.v1 import metrics_service_pb2_grpc
from services.metrics.__main__ import create_server
from services.metrics.config import MetricsSettings
from tests.conftest import free_port, suite_channel


@pytest.fixture
def closed_targets():
    """Targets of the other services on a port nothing listens on: they are UNAVAILABLE."""
    port = free_port()
    return {f"{svc}_addr": f"127.0.0.1:{port}" for svc in ("health", "alerts", "logs")}


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """Each test using it runs once per store implementation."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'botmon.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def start_metrics(make_settings, closed_targets):
    """``async with start_metrics(**settings) as (server, stub)``: a running metrics service.

    Keyword arguments that name a MetricsSettings field go there, the rest to Settings.
    """

    @contextlib.asynccontextmanager
    async def start(**overrides):
        fields = set(MetricsSettings.__dataclass_fields__)
        ms = MetricsSettings.from_env({}, **{k: v for k, v in overrides.items() if k in fields})
        settings = make_settings(**{**closed_targets,
                                    **{k: v for k, v in overrides.items() if k not in fields}})
        server = await create_server(settings, address="127.0.0.1:0", metrics_settings=ms)
        async with server:
            async with suite_channel(f"127.0.0.1:{server.port}", settings) as channel:
                yield server, metrics_service_pb2_grpc.MetricsServiceStub(channel)

    return start
