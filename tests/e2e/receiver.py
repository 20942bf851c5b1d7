"""A local HTTP server standing in for notification receivers (webhook, Slack, …).

It records every POST; a path listed in ``hang`` never answers, like a receiver
whose host accepts connections but whose application is stuck.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.e2e.cluster import free_port

__all__ = ["Receiver"]


@dataclass(frozen=True)
class Received:
    path: str
    body: bytes
    time: float
    answered: bool

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """``async with Receiver(hang={"/stuck"}) as r: r.url("/hook"); r.at("/hook")``."""

    def __init__(self, hang: set[str] | frozenset[str] = frozenset()):
        self.hang = set(hang)
        self.received: list[Received] = []
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        stuck = request.path in self.hang
        self.received.append(Received(request.path, body, time.time(), not stuck))
        if stuck:
            await asyncio.Event().wait()  # until the client gives up or the server stops
        return web.Response(text="ok")

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self._runner.cleanup()
