"""The one gRPC server lifecycle every service uses.

It serves the service's servicers, ``grpc.health.v1`` (Check and Watch),
server reflection and ``botmon.debug.v1``; binds the interceptor that checks
credentials and roles, request ids and errors; listens with TLS when
``BOTMON_TLS_CERT`` is set (certificates re-read on change or SIGHUP); registers
the process with the health service by heartbeat; and on SIGTERM turns
NOT_SERVING, drains for ``grace`` seconds and stops.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from botmon.debug.v1 import debug_service_pb2, debug_service_pb2_grpc
from botmon.runtime.channels import Backends
from botmon.runtime.config import EnvSettings, Settings
from botmon.runtime.credentials import Credentials
from botmon.runtime.debug import DebugServicer
from botmon.runtime.interceptors import ServerInterceptor
from botmon.runtime.registration import Registration
from botmon.runtime.tls import CertificateFiles, server_credentials

__all__ = ["Binding", "GrpcServer", "run_until_signal"]

log = logging.getLogger("botmon.server")

_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass
class Binding:
    """A servicer, the generated function that adds it, and its full service name."""

    name: str
    servicer: Any
    add: Callable[[Any, grpc.aio.Server], None]


@dataclass
class GrpcServer:
    """A started-on-demand ``grpc.aio`` server for one component.

    ``async with GrpcServer(...) as server:`` starts it (``server.port`` is the
    bound port, useful with address ``127.0.0.1:0``) and stops it on exit.
    """

    component: str
    settings: Settings
    bindings: Sequence[Binding]
    address: str | None = None
    extra_settings: Sequence[EnvSettings] = ()
    details: Callable[[], dict] | None = None
    register: bool = True
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    grace: float = 5.0

    def __post_init__(self):
        self.server: grpc.aio.Server | None = None
        self.port = 0
        self.health = health.aio.HealthServicer()
        self.backends = Backends(self.settings)
        self.registration: Registration | None = None
        self.certificates: CertificateFiles | None = None

    @property
    def service_names(self) -> list[str]:
        return [b.name for b in self.bindings]

    async def start(self) -> int:
        server = grpc.aio.server(
            interceptors=[ServerInterceptor(Credentials.for_process(self.settings))],
            options=[("grpc.max_receive_message_length", 64 * 1024 * 1024),
                     ("grpc.max_send_message_length", 64 * 1024 * 1024),
                     ("grpc.so_reuseport", 0),
                     # A GOAWAY after this age makes clients re-resolve their dns:///
                     # target, so replicas added since they connected get traffic. No
                     # max_connection_age_grace: streams in flight run to their end.
                     ("grpc.max_connection_age_ms",
                      int(self.settings.grpc_max_connection_age * 1000))],
        )
        for binding in self.bindings:
            binding.add(binding.servicer, server)
        debug_service_pb2_grpc.add_DebugServiceServicer_to_server(
            DebugServicer(self.component, self.settings, *self.extra_settings), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        debug_name = debug_service_pb2.DESCRIPTOR.services_by_name["DebugService"].full_name
        reflection.enable_server_reflection(
            [*self.service_names, debug_name, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
        address = self.address or self.settings.addr(self.component)
        if self.settings.tls_cert is not None and self.settings.tls_key is not None:
            self.certificates = CertificateFiles(self.settings.tls_cert, self.settings.tls_key,
                                                 self.settings.tls_ca)
            self.port = server.add_secure_port(
                address, server_credentials(self.settings, self.certificates))
        else:
            self.port = server.add_insecure_port(address)
        if not self.port:
            raise OSError(f"cannot listen on {address}")
        await server.start()
        self.server = server
        await self.set_serving(True)
        if self.register and self.component != "health":
            self.registration = Registration(self.backends, self.component, self.port, self.details)
            self.registration.start()
        log.info("serving", extra={"address": address, "port": self.port,
                                   "services": self.service_names,
                                   "tls": self.certificates is not None})
        return self.port

    async def set_serving(self, serving: bool) -> None:
        """Report SERVING or NOT_SERVING for the whole server and each service."""
        status = _SERVING if serving else _NOT_SERVING
        for name in ("", *self.service_names):
            await self.health.set(name, status)

    async def stop(self, grace: float | None = None) -> None:
        if self.server is None:
            return
        await self.health.enter_graceful_shutdown()
        if self.registration:
            await self.registration.stop()
        await self.server.stop(self.grace if grace is None else grace)
        for hook in self.on_stop:
            await hook()
        await self.backends.close()
        self.server = None
        log.info("stopped")

    def reload_certificates(self) -> None:
        """Re-read the TLS files now (SIGHUP); they are also re-read whenever they change."""
        if self.certificates is not None:
            self.certificates.refresh(force=True)

    async def __aenter__(self) -> GrpcServer:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop(0)


async def run_until_signal(server: GrpcServer) -> None:
    """Start ``server``; on SIGTERM or SIGINT drain and stop it; SIGHUP reloads certificates."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, server.reload_certificates)
    await server.start()
    await stop.wait()
    log.info("shutting down", extra={"grace_seconds": server.grace})
    await server.stop()
