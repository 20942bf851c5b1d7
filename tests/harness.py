"""A whole suite in one event loop for tests: real gRPC services plus the Sanic gateway.

    async with Suite(make_settings(), components=("logs",)) as suite:
        async with httpx.AsyncClient() as http:
            r = await http.get(f"{suite.base}/logs", headers=suite.headers("viewer"))

Each requested component runs in-process from ``services.<svc>.__main__.create_server``
(or from a test servicer given in ``servicers``) on its own free port; components
not started are dialled on a closed port, so calls to them fail as UNAVAILABLE.
``suite.stop(name)`` / ``suite.start(name)`` take a backend down and bring it back
on the same port. Rate limits are off unless ``rate_limited=True`` (then the
settings' ``rate_limits`` apply), so tests may make as many requests as they need.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import secrets
import socket
from typing import Any

from sanic import Sanic

from botmon.runtime.channels import SERVICES
from botmon.runtime.config import ApiToken, Rate, Settings
from botmon.runtime.server import Binding, GrpcServer
from gateway.app import create_app
from tests.conftest import free_port as _free_port

__all__ = ["COMPONENTS", "KNOWN", "ROLES", "Suite"]

#: The components a Suite starts unless told otherwise.
COMPONENTS = ("health", "metrics", "alerts", "logs")
#: Every component a Suite can start (export only when asked for).
KNOWN = (*COMPONENTS, "export")

# Several gateway apps per process: Sanic then re-applies its start-up code rewrites
# (TouchUp) from the originals instead of failing on already rewritten methods.
Sanic.test_mode = True
ROLES = ("viewer", "operator", "admin")




def _binding(component: str, servicer: Any) -> Binding:
    """A Binding that serves ``servicer`` as ``component``'s service."""
    full_name, stub = SERVICES[component]
    module = importlib.import_module(stub.__module__)
    service = full_name.rsplit(".", 1)[1]
    return Binding(full_name, servicer, getattr(module, f"add_{service}Servicer_to_server"))


class Suite:
    """Starts ``components`` and the gateway; ``async with`` stops everything."""

    def __init__(self, settings: Settings, components: tuple[str, ...] = COMPONENTS, *,
                 servicers: dict[str, Any] | None = None, gateway: bool = True,
                 rate_limited: bool = False, options: dict[str, dict[str, Any]] | None = None):
        unknown = set(components) - set(KNOWN) or set(servicers or ()) - set(KNOWN)
        if unknown:
            raise ValueError(f"unknown components {sorted(unknown)}; choose from {KNOWN}")
        self.components = tuple(dict.fromkeys((*components, *(servicers or {}))))
        self.servicers = dict(servicers or {})
        #: Extra keyword arguments of each component's ``create_server`` (its own settings).
        self.options = dict(options or {})
        self.with_gateway = gateway
        self.tokens = {role: f"test-{role}-{secrets.token_hex(16)}" for role in ROLES}
        self.ports = {name: _free_port() for name in KNOWN}
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        fields: dict[str, Any] = {
            "http_addr": f"127.0.0.1:{self.port}",
            "api_tokens": (*settings.api_tokens,
                           *(ApiToken(t, role, f"test-{role}") for role, t in self.tokens.items())),
        }
        if not rate_limited:
            fields["rate_limits"] = {name: Rate(0, 1) for name in settings.rate_limits}
        for name in KNOWN:
            fields[f"{name}_addr"] = fields[f"{name}_target"] = f"127.0.0.1:{self.ports[name]}"
        self.settings: Settings = dataclasses.replace(settings, **fields)
        self.servers: dict[str, GrpcServer] = {}
        self.app: Sanic | None = None
        self._http = None
        secure = "s" if self.settings.tls_cert else ""
        self.url = f"http{secure}://127.0.0.1:{self.port}"
        self.base = f"{self.url}/api/v1/monitoring"
        self.ws_url = f"ws{secure}://127.0.0.1:{self.port}"

    def headers(self, role: str = "viewer") -> dict[str, str]:
        """``Authorization`` header for a token of ``role``."""
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    async def start(self, name: str) -> GrpcServer:
        """Start (or restart) backend ``name`` on its port."""
        address = f"127.0.0.1:{self.ports[name]}"
        if name in self.servicers:
            server = GrpcServer(name, self.settings, [_binding(name, self.servicers[name])],
                                address=address)
        else:
            module = importlib.import_module(f"services.{name}.__main__")
            server = await module.create_server(self.settings, address=address,
                                                **self.options.get(name, {}))
        await server.start()
        self.servers[name] = server
        return server

    async def stop(self, name: str) -> None:
        """Stop backend ``name`` at once; its port stays reserved for :meth:`start`."""
        server = self.servers.pop(name, None)
        if server is not None:
            await server.stop(0)

    async def __aenter__(self) -> Suite:
        try:
            # Health first: the others register with it by heartbeat when they start.
            for name in sorted(self.components, key=lambda n: n != "health"):
                await self.start(name)
            if self.with_gateway:
                await self._start_gateway()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        if self._http is not None:
            await self._stop_gateway()
        self._sock.close()
        await asyncio.gather(*(self.stop(name) for name in list(self.servers)))

    async def _start_gateway(self) -> None:
        self.app = create_app(self.settings)
        self._sock.listen(128)
        self._http = await self.app.create_server(sock=self._sock, return_asyncio_server=True,
                                                  ssl=self.app.ctx.ssl)
        # create_server already listens; nothing connects before this returns.
        await self._http.startup()
        await self._http.before_start()
        await self._http.after_start()

    async def _stop_gateway(self) -> None:
        http, self._http = self._http, None
        await http.before_stop()
        http.server.close()
        for conn in list(http.connections):
            conn.close_if_idle()
        # Give in-flight requests a moment, then cut what is left (sockets included).
        for _ in range(20):
            if not http.connections:
                break
            await asyncio.sleep(0.05)
        closing = []
        for conn in list(http.connections):
            websocket = getattr(conn, "websocket", None)
            if websocket is not None:
                closing.append(websocket.close_connection())
            else:
                conn.abort()
        await asyncio.gather(*closing, return_exceptions=True)
        await http.server.wait_closed()
        await http.after_stop()
        Sanic.unregister_app(self.app)
