"""An acknowledged batch survives ``kill -9`` of the service process right after the ack,
whichever way it came in: ``WriteLogs``, ``IngestLogs``, an OTLP Export or a Loki protobuf push."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as otlp
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc as otlp_grpc

from botmon.logs.v1 import logs_service_pb2 as pb
from botmon.logs.v1 import logs_service_pb2_grpc
from botmon.loki.v1 import push_pb2, push_service_pb2_grpc
from botmon.runtime.channels import open_channel
from tests.conftest import free_port
from tests.logs.support import entry

INTERNAL_TOKEN = "logs-durability-internal-token"


class Process:
    """``python -m services.logs`` with the given environment."""

    def __init__(self, env: dict[str, str]):
        self.port = free_port()
        self.env = {**os.environ, **env, "BOTMON_LOGS_ADDR": f"127.0.0.1:{self.port}",
                    "BOTMON_INTERNAL_TOKEN": INTERNAL_TOKEN,
                    # Configured, so no token is bootstrapped (and audited among the entries).
                    "BOTMON_API_TOKENS": "logs-durability-admin-token:admin",
                    "BOTMON_HEALTH_TARGET": "127.0.0.1:9", "BOTMON_LOG_LEVEL": "warning"}
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> logs_service_pb2_grpc.LogsServiceStub:
        self.proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "services.logs",
                                                         env=self.env, cwd=os.getcwd())
        self.channel = open_channel(f"127.0.0.1:{self.port}", token=INTERNAL_TOKEN)
        await asyncio.wait_for(self.channel.channel_ready(), 30)
        return logs_service_pb2_grpc.LogsServiceStub(self.channel)

    async def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(self.proc.wait(), 10)
        await self.channel.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def env(request, tmp_path) -> dict[str, str]:
    env = {"BOTMON_DATA_DIR": str(tmp_path)}
    if request.param == "postgresql":
        env["BOTMON_STORE_URL"] = request.getfixturevalue("postgres_url")
    return env


async def test_acknowledged_batches_survive_kill_9(env):
    process = Process(env)
    acknowledged: list[str] = []
    try:
        for round_ in range(3):
            stub = await process.start()
            batch = [entry(message=f"round {round_} entry {i}") for i in range(2000)]
            reply = await stub.WriteLogs(pb.WriteLogsRequest(logs=batch), timeout=30)
            await process.kill()  # at once: nothing after the ack may be needed
            assert reply.accepted == 2000
            acknowledged += [e.message for e in batch]

        async def stream():
            for b in range(3):
                yield pb.IngestLogsRequest(logs=[entry(message=f"stream {b} {i}")
                                                 for i in range(1000)])

        stub = await process.start()
        reply = await stub.IngestLogs(stream(), timeout=30)
        await process.kill()
        assert reply.accepted == 3000
        acknowledged += [f"stream {b} {i}" for b in range(3) for i in range(1000)]

        stub = await process.start()
        stored, cursor = [], ""
        while True:
            page = await stub.ListLogs(pb.ListLogsRequest(limit=1000, cursor=cursor), timeout=30)
            stored += [e.message for e in page.logs]
            cursor = page.next_cursor
            if not cursor:
                break
        assert page.total == len(acknowledged)
        assert sorted(stored) == sorted(acknowledged)
    finally:
        if process.proc and process.proc.returncode is None:
            await process.kill()


async def _messages(stub: logs_service_pb2_grpc.LogsServiceStub, service: str) -> list[str]:
    page = await stub.ListLogs(pb.ListLogsRequest(service=service, limit=1000, order="asc"),
                               timeout=30)
    return [e.message for e in page.logs]


async def test_acknowledged_shipper_pushes_survive_kill_9(env):
    """The OTLP Export and the Loki push (what ``POST /v1/logs`` and a snappy
    ``POST /loki/api/v1/push`` forward) share the logs service's committer and its promise."""
    process = Process(env)
    otlp_lines = [f"otlp line {i}" for i in range(1000)]
    loki_lines = [f"loki line {i}" for i in range(1000)]
    try:
        await process.start()
        export = otlp.ExportLogsServiceRequest()
        resource = export.resource_logs.add()
        resource.resource.attributes.add(key="service.name").value.string_value = "otlp-app"
        records = resource.scope_logs.add().log_records
        for line in otlp_lines:
            records.add(severity_number=9).body.string_value = line
        reply = await otlp_grpc.LogsServiceStub(process.channel).Export(export, timeout=30)
        await process.kill()
        assert not reply.HasField("partial_success")

        await process.start()
        push = push_pb2.PushRequest()
        stream = push.streams.add(labels='{job="loki-app", env="prod"}')
        for line in loki_lines:
            stream.entries.add(line=line).timestamp.GetCurrentTime()
        reply = await push_service_pb2_grpc.PushServiceStub(process.channel).Push(push,
                                                                                 timeout=30)
        await process.kill()
        assert (reply.accepted, list(reply.errors)) == (1000, [])

        stub = await process.start()
        assert await _messages(stub, "otlp-app") == otlp_lines
        assert await _messages(stub, "loki-app") == loki_lines
    finally:
        if process.proc and process.proc.returncode is None:
            await process.kill()
