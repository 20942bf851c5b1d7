"""gRPC authentication and roles on every port (CONTRACT.md §11), against the real services.

Every RPC of every service is called with no credential, a bad one and each role's
token; what each call must get comes from ``botmon.runtime.roles``, the table the
interceptor enforces. A second test holds that table to the protos.
"""

from __future__ import annotations

import asyncio
import importlib
import pkgutil

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

import botmon
from botmon.runtime.channels import open_channel
from botmon.runtime.config import ROLES
from botmon.runtime.credentials import internal_token
from botmon.runtime.roles import OPEN_SERVICES, RPC_ROLES
from tests.harness import KNOWN, Suite

REFUSED = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}
#: Which component serves each service (DebugService: every one; health's is enough here).
SERVED_BY = {"botmon.health.v1.HealthService": "health",
             "botmon.metrics.v1.MetricsService": "metrics",
             "botmon.alerts.v1.AlertsService": "alerts",
             "botmon.logs.v1.LogsService": "logs",
             "botmon.loki.v1.PushService": "logs",
             "opentelemetry.proto.collector.logs.v1.LogsService": "logs",
             "botmon.debug.v1.DebugService": "logs",
             "botmon.export.v1.ExportService": "export"}


def proto_services() -> dict[str, list]:
    """Every service of the protos compiled into ``botmon``, and the OTLP logs service the
    logs port serves: name -> methods."""
    found = {}
    modules = [m.name for m in pkgutil.walk_packages(botmon.__path__, "botmon.")
               if m.name.endswith("_pb2")]
    for name in [*modules, "opentelemetry.proto.collector.logs.v1.logs_service_pb2"]:
        descriptor = importlib.import_module(name).DESCRIPTOR
        for service in descriptor.services_by_name.values():
            found[service.full_name] = list(service.methods)
    return found


def _reflected(address: str) -> list[str]:
    """The services a server lists by reflection, asked without any credential."""
    with grpc.insecure_channel(address) as channel:
        return list(ProtoReflectionDescriptorDatabase(channel).get_services())


def test_every_rpc_of_the_protos_has_a_role():
    services = proto_services()
    missing = [f"{name}/{m.name}" for name, methods in services.items() for m in methods
               if m.name not in RPC_ROLES.get(name, {})]
    assert not missing, f"add these RPCs to botmon.runtime.roles.RPC_ROLES: {missing}"
    stale = [f"{name}/{m}" for name, methods in RPC_ROLES.items() for m in methods
             if m not in {d.name for d in services.get(name, [])}]
    assert not stale, f"rows for RPCs no proto declares: {stale}"
    assert all(role in ROLES for methods in RPC_ROLES.values() for role in methods.values())


def test_every_service_of_the_protos_is_called_with_every_credential():
    """A new service must name its component here, or its RPCs go untested."""
    assert set(SERVED_BY) == set(proto_services())


async def test_every_registered_service_has_roles_or_is_open(make_settings):
    """What the running servers register (reflection) is either open or in the table."""
    async with Suite(make_settings(), components=KNOWN, gateway=False) as suite:
        for name in KNOWN:
            registered = set(await asyncio.to_thread(_reflected, suite.settings.target(name)))
            unknown = registered - set(RPC_ROLES) - OPEN_SERVICES
            assert not unknown, f"{name} serves {unknown}, which have no roles"


def _call(channel: grpc.aio.Channel, method, metadata, timeout: float = 5.0):
    """Call ``method`` with an empty request (or stream); its status code (OK if it answered)."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    ident = (lambda b: b, lambda b: b)
    if method.client_streaming:
        kind = channel.stream_stream if method.server_streaming else channel.stream_unary
        return kind(path, *ident)(iter(()), timeout=timeout, metadata=metadata)
    kind = channel.unary_stream if method.server_streaming else channel.unary_unary
    return kind(path, *ident)(b"", timeout=timeout, metadata=metadata)


async def _outcome(channel, method, metadata) -> grpc.StatusCode:
    # Streams are judged by their first message (or end): one that answers at all got in.
    call = _call(channel, method, metadata, 2.0 if method.server_streaming else 5.0)
    try:
        if method.server_streaming:
            await call.read()
            call.cancel()
        else:
            await call
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def _expected(needed: str, credential: str) -> set[grpc.StatusCode] | None:
    """The refusal ``credential`` must get, or None when it must get past the check."""
    if credential in ("none", "bad"):
        return {grpc.StatusCode.UNAUTHENTICATED}
    if ROLES.index(credential) < ROLES.index(needed):
        return {grpc.StatusCode.PERMISSION_DENIED}
    return None


@pytest.mark.parametrize("service", sorted(SERVED_BY))
async def test_every_rpc_with_every_credential(make_settings, service):
    async with Suite(make_settings(), components=(SERVED_BY[service],), gateway=False) as suite:
        credentials = {"none": (), "bad": (("authorization", "Bearer not-a-token-at-all-1234"),)}
        credentials.update({role: (("authorization", f"Bearer {token}"),)
                            for role, token in suite.tokens.items()})
        methods = proto_services()[service]
        wrong = []
        async with open_channel(suite.settings.target(SERVED_BY[service])) as channel:
            for method in methods:
                needed = RPC_ROLES[service][method.name]
                for credential, metadata in credentials.items():
                    got = await _outcome(channel, method, metadata)
                    expected = _expected(needed, credential)
                    if (got not in expected) if expected else (got in REFUSED):
                        wrong.append(f"{method.name} as {credential} (needs {needed}): {got.name}")
        assert not wrong, wrong


async def test_health_and_reflection_stay_open(make_settings):
    async with Suite(make_settings(), components=("logs",), gateway=False) as suite:
        async with open_channel(suite.settings.target("logs")) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        names = await asyncio.to_thread(_reflected, suite.settings.target("logs"))
        assert "botmon.logs.v1.LogsService" in names


async def test_internal_credential_believes_the_forwarded_role(make_settings):
    """The gateway's forwarded role is enforced too: the internal credential is no bypass."""
    settings = make_settings()
    async with Suite(settings, components=("logs",), gateway=False) as suite:
        internal = ("authorization", f"Bearer {internal_token(suite.settings)}")
        write = next(m for m in proto_services()["botmon.logs.v1.LogsService"]
                     if m.name == "WriteLogs")
        async with open_channel(suite.settings.target("logs")) as channel:
            as_viewer = (internal, ("x-botmon-subject", "vera"), ("x-botmon-role", "viewer"))
            assert await _outcome(channel, write, as_viewer) == grpc.StatusCode.PERMISSION_DENIED
            as_operator = (internal, ("x-botmon-subject", "olga"), ("x-botmon-role", "operator"))
            assert await _outcome(channel, write, as_operator) not in REFUSED
