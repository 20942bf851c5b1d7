"""Fixtures for the health service: the in-process server and local stand-in servers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import pytest
from aiohttp import web
from grpc_health.v1 import health_pb2, health_pb2_grpc

from botmon.health.v1 import health_service_pb2 as pb
from botmon.health.v1 import health_service_pb2_grpc
from botmon.runtime.config import Settings
from services.health.__main__ import create_server
from services.health.config import HealthSettings
from services.health.server import HealthServer
from tests.conftest import free_port, suite_channel

#: A port nothing listens on: probes against it are refused at once.
CLOSED = "127.0.0.1:{port}"


@dataclass
class Running:
    """A started health server and clients for it."""

    server: HealthServer
    channel: grpc.aio.Channel
    stub: health_service_pb2_grpc.HealthServiceStub
    grpc_health: health_pb2_grpc.HealthStub

    async def detailed(self) -> pb.GetDetailedHealthResponse:
        return await self.stub.GetDetailedHealth(pb.GetDetailedHealthRequest(), timeout=10)

    async def status(self) -> dict[str, list]:
        """GetStatus entries by name."""
        response = await self.stub.GetStatus(pb.GetStatusRequest(), timeout=10)
        entries: dict[str, list] = {}
        for entry in response.services:
            entries.setdefault(entry.name, []).append(entry)
        return entries

    async def serving(self) -> int:
        reply = await self.grpc_health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        return reply.status


@contextlib.asynccontextmanager
async def serve(settings: Settings, health: HealthSettings | None = None) -> AsyncIterator[Running]:
    server = await create_server(settings, address="127.0.0.1:0",
                                 health_settings=health or HealthSettings())
    async with server:
        channel = suite_channel(f"127.0.0.1:{server.port}", settings)
        try:
            yield Running(server, channel, health_service_pb2_grpc.HealthServiceStub(channel),
                          health_pb2_grpc.HealthStub(channel))
        finally:
            await channel.close()


@pytest.fixture
def health_settings(make_settings):
    """Settings for a health server: quick probes, metrics dialled on a closed port."""

    def make(**overrides) -> Settings:
        overrides.setdefault("probe_timeout", 1.0)
        overrides.setdefault("probe_interval", 30.0)
        overrides.setdefault("metrics_target", CLOSED.format(port=free_port()))
        overrides.setdefault("grpc_deadline", 2.0)
        return make_settings(**overrides)

    return make


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


@dataclass
class FakeLlm:
    """An OpenAI-compatible ``/v1/models`` endpoint, standing in for the LLM server."""

    models: list[str] = field(default_factory=lambda: ["local-model", "other-model"])
    status: int = 200
    delay: float = 0.0
    hits: int = 0
    url: str = ""
    authorization: list[str] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        self.authorization.append(request.headers.get("Authorization", ""))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.status != 200:
            return web.json_response({"error": {"message": "down"}}, status=self.status)
        return web.json_response({"object": "list", "data": [
            {"id": m, "object": "model", "owned_by": "test"} for m in self.models]})


@pytest.fixture
async def fake_llm() -> AsyncIterator[FakeLlm]:
    llm = FakeLlm()
    app = web.Application()
    app.router.add_get("/v1/models", llm.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    llm.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    yield llm
    await runner.cleanup()
