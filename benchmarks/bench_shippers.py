"""Ingest rate of what log shippers send, against ``WriteLogs`` in the same run.

The same lines (two small metadata keys each, 20 services, four levels) are
written in requests of 2 000 lines, four requests in flight, into a fresh SQLite
store of a logs service in its own process each time, in two interleaved rounds
(the best of each is shown):

- baseline: ``WriteLogs`` over gRPC, straight to the logs service;
- OTLP over gRPC: ``LogsService/Export`` on the logs service's port, one
  ResourceLogs per service, the metadata as record attributes;
- Loki protobuf over gRPC: ``botmon.loki.v1.PushService/Push`` on the logs
  service's port, ``PushRequest`` bodies (one stream per service and level, the
  metadata as structured metadata) — like for like with ``WriteLogs``;
- Loki protobuf over HTTP: the same bodies snappy-compressed, as Promtail sends
  them, to ``POST /loki/api/v1/push`` on a gateway process; against ``WriteLogs``
  through the same gateway (``POST /logs``, JSON), like for like, and against the
  gRPC baseline.

Each figure is given twice: lines per second of wall-clock time, and lines per
second of CPU time of the serving processes (logs service plus gateway), which a
busy machine disturbs less.

``BOTMON_BENCH_SHIPPER_LINES`` sets the lines per protocol (default 100 000).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import cramjam
import httpx
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as otlp

from benchmarks.cpu import read_cpu
from benchmarks.processes import Processes, figure, free_port, wait_http, wait_port
from botmon.logs.v1 import log_entry_pb2, logs_service_pb2
from botmon.loki.v1 import push_pb2, push_service_pb2
from botmon.runtime.channels import open_channel

LINES = int(os.environ.get("BOTMON_BENCH_SHIPPER_LINES", "100000"))
PER_REQUEST = 2000
IN_FLIGHT = 4
#: Interleaved rounds; each figure is its best round, so a busy moment of the machine
#: does not land on one protocol only.
ROUNDS = 2
TOKEN = "bench-operator-token-0123456789abcdef"
LEVELS = ("debug", "info", "warn", "error")
OTEL_SEVERITY = {"debug": 5, "info": 9, "warn": 13, "error": 17}
WORDS = ("timeout", "request", "connection", "payment", "cache", "retry", "session", "render")

Line = tuple[int, str, str, str, str, str]  # ts ns, level, service, message, request_id, user


def _lines() -> list[list[Line]]:
    base = time.time_ns() - 3600 * 10**9
    lines = [(base + i * 1000, LEVELS[i % 4], f"svc{i % 20}",
              f"{WORDS[i % 8]} processed order {i} for user_{i % 5000} in {i % 997} ms",
              f"req_{i}", f"user_{i % 5000}") for i in range(LINES)]
    return [lines[i:i + PER_REQUEST] for i in range(0, LINES, PER_REQUEST)]


def _write_logs(batch: list[Line]) -> bytes:
    entries = []
    for ts, level, service, message, request_id, user in batch:
        entry = log_entry_pb2.LogEntry(level=level, service=service, message=message)
        entry.timestamp.FromNanoseconds(ts)
        entry.metadata.update({"request_id": request_id, "user_id": user})
        entries.append(entry)
    return logs_service_pb2.WriteLogsRequest(logs=entries).SerializeToString()


def _rest_logs(batch: list[Line]) -> bytes:
    return json.dumps({"logs": [
        {"timestamp": ts / 1e9, "level": level, "service": service, "message": message,
         "metadata": {"request_id": request_id, "user_id": user}}
        for ts, level, service, message, request_id, user in batch]}).encode()


def _otlp(batch: list[Line]) -> bytes:
    request = otlp.ExportLogsServiceRequest()
    by_service: dict[str, object] = {}
    for ts, level, service, message, request_id, user in batch:
        records = by_service.get(service)
        if records is None:
            resource = request.resource_logs.add()
            resource.resource.attributes.add(key="service.name").value.string_value = service
            scope = resource.scope_logs.add()
            scope.scope.name = "bench"
            records = by_service[service] = scope.log_records
        record = records.add(time_unix_nano=ts, severity_number=OTEL_SEVERITY[level],
                             severity_text=level.upper())
        record.body.string_value = message
        record.attributes.add(key="request_id").value.string_value = request_id
        record.attributes.add(key="user_id").value.string_value = user
    return request.SerializeToString()


def _loki(batch: list[Line]) -> bytes:
    request = push_pb2.PushRequest()
    streams: dict[tuple[str, str], object] = {}
    for ts, level, service, message, request_id, user in batch:
        entries = streams.get((service, level))
        if entries is None:
            stream = request.streams.add(labels=f'{{job="{service}", level="{level}"}}')
            entries = streams[(service, level)] = stream.entries
        entry = entries.add(line=message)
        entry.timestamp.FromNanoseconds(ts)
        entry.structured_metadata.add(name="request_id", value=request_id)
        entry.structured_metadata.add(name="user_id", value=user)
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


async def _drive(send: Callable[[bytes], Awaitable[int]], bodies: list[bytes]) -> float:
    """Lines per second sending ``bodies`` with :data:`IN_FLIGHT` requests at a time."""
    queue = list(reversed(bodies))
    stored = 0

    async def worker() -> None:
        nonlocal stored
        while queue:
            accepted = await send(queue.pop())
            stored += accepted

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    elapsed = time.perf_counter() - started
    assert stored == LINES, f"stored {stored} of {LINES}"
    return LINES / elapsed


async def _grpc(port: int, path: str, response, count, bodies: list[bytes]) -> float:
    async with open_channel(f"127.0.0.1:{port}", token=TOKEN) as channel:
        await asyncio.wait_for(channel.channel_ready(), 30)
        call = channel.unary_unary(path, response_deserializer=response.FromString)

        async def send(body: bytes) -> int:
            return count(await call(body, timeout=120), body)

        return await _drive(send, bodies)


async def _http(url: str, content_type: str, bodies: list[bytes]) -> float:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": content_type}
    async with httpx.AsyncClient(timeout=120) as client:
        async def send(body: bytes) -> int:
            response = await client.post(url, content=body, headers=headers)
            assert response.status_code == 202, response.text[:300]
            return response.json()["accepted"]

        return await _drive(send, bodies)


def _suite(tmp: Path, name: str, procs: Processes) -> tuple[int, int, list[int]]:
    """A logs service on a fresh SQLite store and a gateway in front of it; their ports
    and process ids."""
    logs, http = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOTMON_")}
    # Logging at make run's level (info), like every figure.
    env.update({
        "BOTMON_DATA_DIR": str(tmp / name), "BOTMON_LOGS_ADDR": f"127.0.0.1:{logs}",
        "BOTMON_HTTP_ADDR": f"127.0.0.1:{http}", "BOTMON_API_TOKENS": f"{TOKEN}:operator:bench",
        "BOTMON_RATE_LIMITS": "ingest=unlimited", "BOTMON_LOG_LEVEL": "info",
        "BOTMON_LOG_RETENTION": "default=3650d", "BOTMON_LOG_RETENTION_INTERVAL": "3600",
        "PYTHONUNBUFFERED": "1"})
    for other in ("health", "metrics", "alerts"):  # not started: nothing listens there
        env[f"BOTMON_{other.upper()}_ADDR"] = f"127.0.0.1:{free_port()}"
    service = procs.start(f"logs-{name}", [sys.executable, "-m", "services.logs"], env)
    wait_port(logs)
    gateway = procs.start(f"gateway-{name}", [sys.executable, "-m", "gateway"], env)
    wait_http(f"http://127.0.0.1:{http}/api/v1/monitoring/logs?limit=1", procs,
              f"gateway-{name}", gateway, TOKEN)
    return logs, http, [service.pid, gateway.pid]


def main() -> None:
    batches = _lines()
    runs: dict[str, Callable[[int, int], Awaitable[float]]] = {
        "write_logs_grpc": lambda logs, http: _grpc(
            logs, "/botmon.logs.v1.LogsService/WriteLogs", logs_service_pb2.WriteLogsResponse,
            lambda reply, _: reply.accepted, [_write_logs(b) for b in batches]),
        "otlp_grpc": lambda logs, http: _grpc(
            logs, "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            otlp.ExportLogsServiceResponse,
            lambda reply, body: PER_REQUEST - reply.partial_success.rejected_log_records,
            [_otlp(b) for b in batches]),
        "loki_protobuf_grpc": lambda logs, http: _grpc(
            logs, "/botmon.loki.v1.PushService/Push", push_service_pb2.PushResponse,
            lambda reply, _: reply.accepted,
            [bytes(cramjam.snappy.decompress_raw(_loki(b))) for b in batches]),
        "loki_protobuf_http": lambda logs, http: _http(
            f"http://127.0.0.1:{http}/loki/api/v1/push", "application/x-protobuf",
            [_loki(b) for b in batches]),
        "write_logs_rest": lambda logs, http: _http(
            f"http://127.0.0.1:{http}/api/v1/monitoring/logs", "application/json",
            [_rest_logs(b) for b in batches]),
    }
    rates: dict[str, float] = {}
    per_cpu: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="botmon-bench-shippers-") as tmp:
        for round_ in range(ROUNDS):
            for name, run in runs.items():
                with Processes(Path(tmp)) as procs:
                    logs, http, pids = _suite(Path(tmp), f"{name}-{round_}", procs)
                    before = read_cpu(pids)
                    rate = asyncio.run(run(logs, http))
                    after = read_cpu(pids)
                used = sum(after.seconds[p] - before.seconds[p] for p in pids)
                rates[name] = max(rates.get(name, 0.0), rate)
                per_cpu[name] = max(per_cpu.get(name, 0.0), LINES / used)
    for unit, figures in (("lines/s", rates), ("lines/CPU-s", per_cpu)):
        suffix = "per_second" if unit == "lines/s" else "per_cpu_second"
        baseline = figures["write_logs_grpc"]
        figure(f"logs_ingest_otlp_grpc_lines_{suffix}", figures["otlp_grpc"], unit, baseline)
        figure(f"logs_ingest_loki_protobuf_grpc_lines_{suffix}", figures["loki_protobuf_grpc"],
               unit, baseline)
        figure(f"logs_ingest_loki_protobuf_http_lines_{suffix}", figures["loki_protobuf_http"],
               unit, figures["write_logs_rest"])
        figure(f"logs_ingest_loki_protobuf_http_vs_grpc_write_logs_lines_{suffix}",
               figures["loki_protobuf_http"], unit, baseline)

if __name__ == "__main__":
    main()
