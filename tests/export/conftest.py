"""Fixtures for the export component: OTLP receivers and a suite that exports to them."""

from __future__ import annotations

import contextlib

import pytest

from botmon.export.v1 import export_service_pb2, export_service_pb2_grpc
from services.export.config import ExportSettings
from tests.conftest import suite_channel
from tests.export.receivers import GrpcReceiver, HttpReceiver
from tests.harness import Suite

#: Quick loop settings for tests: short intervals, fast retries.
FAST = ExportSettings(interval=2.0, linger=0.1, poll=0.05, retry_initial=0.05, retry_max=0.5,
                      send_timeout=3.0, lease_ttl=3.0)


@pytest.fixture
async def grpc_receiver():
    receiver = GrpcReceiver()
    await receiver.up()
    yield receiver
    await receiver.down()


@pytest.fixture
async def stopped_receiver():
    """A gRPC receiver not yet listening (a destination that is down); ``up()`` starts it."""
    receiver = GrpcReceiver()
    yield receiver
    await receiver.down()


@pytest.fixture
async def http_receiver():
    receiver = HttpReceiver()
    await receiver.up()
    yield receiver
    await receiver.down()


def export_options(sinks: dict, settings: ExportSettings = FAST) -> dict:
    """Suite ``options`` that give the export service its settings directly."""
    return {"export": {"export_settings": settings, "sink_settings": sinks}}


@contextlib.asynccontextmanager
async def export_suite(settings, sinks: dict, export_settings: ExportSettings = FAST,
                       components=("health", "metrics", "logs", "export")):
    async with Suite(settings, components=components,
                     options=export_options(sinks, export_settings)) as suite:
        yield suite


async def destinations(suite: Suite) -> dict[str, object]:
    """ListDestinations over gRPC, by name."""
    async with suite_channel(f"127.0.0.1:{suite.ports['export']}", suite.settings) as channel:
        reply = await export_service_pb2_grpc.ExportServiceStub(channel).ListDestinations(
            export_service_pb2.ListDestinationsRequest(), timeout=5)
    return {d.name: d for d in reply.destinations}
