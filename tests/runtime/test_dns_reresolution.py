"""A replica that appears in DNS gets calls once the connection age makes clients re-resolve.

On Kubernetes a headless Service's name resolves to every ready replica, and the suite's
clients dial it as ``dns:///<svc>…:<port>`` under round_robin. Here a real DNS server
(dnslib, on a loopback UDP port) answers for the name, first with one replica and then
with two; the client is the suite's own channel, pointed at that server through the
target's authority (``dns://127.0.0.1:<port>/<name>:<grpc port>``, which gRPC's c-ares
resolver honours), and the servers are the suite's GrpcServer on 127.0.0.1 and 127.0.0.2.
gRPC re-resolves at most every 30 s (``grpc.dns_min_time_between_resolutions_ms``), so
the second replica gets calls within max(BOTMON_GRPC_MAX_CONNECTION_AGE, 30 s).
"""

from __future__ import annotations

import asyncio

import pytest
from dnslib import QTYPE, RR, A, DNSRecord
from dnslib.server import DNSServer

from botmon.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from botmon.runtime.server import Binding, GrpcServer
from tests.conftest import suite_channel

NAME = "logs.botmon.test."
FIRST, SECOND = "127.0.0.1", "127.0.0.2"


class Zone:
    """A dnslib resolver that answers A queries for NAME with ``addresses``, now."""

    def __init__(self, *addresses: str):
        self.addresses = list(addresses)

    def resolve(self, request: DNSRecord, handler) -> DNSRecord:
        reply = request.reply()
        if request.q.qtype == QTYPE.A and str(request.q.qname).lower() == NAME:
            for address in self.addresses:
                reply.add_answer(RR(NAME, QTYPE.A, rdata=A(address), ttl=0))
        return reply


class Replica(logs_service_pb2_grpc.LogsServiceServicer):
    """Counts the ListLogs calls it serves; ``called`` is set by the first."""

    def __init__(self):
        self.calls = 0
        self.called = asyncio.Event()

    async def ListLogs(self, request, context):
        self.calls += 1
        self.called.set()
        return logs_service_pb2.ListLogsResponse()


def replica_server(settings, address: str, replica: Replica) -> GrpcServer:
    return GrpcServer("logs", settings, [
        Binding("botmon.logs.v1.LogsService", replica,
                logs_service_pb2_grpc.add_LogsServiceServicer_to_server)],
        address=address, register=False)


@pytest.fixture
def dns():
    zone = Zone(FIRST)
    server = DNSServer(zone, address="127.0.0.1", port=0)
    server.start_thread()
    try:
        yield zone, server.server.server_address[1]
    finally:
        server.stop()


@pytest.mark.timeout(180)
async def test_a_replica_added_to_dns_gets_calls_after_the_connection_age(make_settings, dns):
    zone, dns_port = dns
    settings = make_settings(grpc_max_connection_age=1.0)
    first, second = Replica(), Replica()
    async with replica_server(settings, f"{FIRST}:0", first) as one:
        async with replica_server(settings, f"{SECOND}:{one.port}", second):
            channel = suite_channel(f"dns://127.0.0.1:{dns_port}/{NAME.rstrip('.')}:{one.port}",
                                    settings)
            try:
                stub = logs_service_pb2_grpc.LogsServiceStub(channel)

                async def call() -> None:
                    await stub.ListLogs(logs_service_pb2.ListLogsRequest(), timeout=5)

                for _ in range(5):
                    await call()
                assert (first.calls, second.calls) == (5, 0)

                zone.addresses = [FIRST, SECOND]  # a replica is added

                async def call_until_the_new_replica_answers() -> None:
                    while not second.called.is_set():
                        await call()
                        await asyncio.sleep(0.1)

                # Generous: one connection age, then gRPC's 30 s floor between resolutions.
                await asyncio.wait_for(call_until_the_new_replica_answers(), timeout=120)
                # From now on round_robin spreads calls over both replicas.
                before = (first.calls, second.calls)
                for _ in range(10):
                    await call()
                assert first.calls > before[0] and second.calls > before[1]
            finally:
                await channel.close()
