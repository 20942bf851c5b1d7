"""``POST /metrics/events`` (JSON, parsed by the service: RecordEventsHttp) and gRPC
``RecordEvents`` apply one set of rules: the same batch adds up to the same figures, and
every refusal reads the same.

Each way writes into its own suite; the series computed from events must then be equal.
"""

from __future__ import annotations

import time
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import json_format

from botmon.metrics.v1 import metrics_pb2, metrics_service_pb2, metrics_service_pb2_grpc
from tests.conftest import suite_channel, timestamp_message
from tests.harness import Suite

T = int(time.time()) - 120
#: The series computed from events alone (not from the host or the logs).
FROM_EVENTS = ("botserver_requests_total", "botserver_request_duration_seconds",
               "botserver_response_bytes_total", "botserver_request_errors_total",
               "botserver_sessions_", "botserver_conversations_",
               "botserver_conversation_messages_total")

#: Events as a REST client writes them, valid and not, with proto and JSON member names.
BATCH: list[dict[str, Any]] = [
    {"type": "request", "method": "GET", "route": "/chat", "status": 200, "duration_ms": 120,
     "bytes": 512, "timestamp": T},
    {"type": "request", "method": "post", "route": "/chat", "status": 502,
     "durationMs": 80.5, "timestamp": f"{T + 0.5}", "sessionId": "s1"},
    {"type": "request", "method": "BREW", "route": "/pot", "status": 418, "duration_ms": 0.25,
     "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.250Z", time.gmtime(T))},
    {"type": "session_started", "session_id": "s1", "service": "web", "timestamp": T},
    {"type": "session_ended", "session_id": "s1", "timestamp": T + 1},
    {"type": "conversation_started", "conversationId": "c1", "timestamp": T},
    {"type": "conversation_completed", "conversation_id": "c1", "messages": 6,
     "timestamp": T + 2},
    # Refused events, each for its own rule.
    {"type": "click"},
    {"type": "request", "method": "", "status": 200, "duration_ms": 1},
    {"type": "request", "method": "GET", "status": 600, "duration_ms": 1},
    {"type": "request", "method": "GET", "status": 200, "duration_ms": -1},
    {"type": "request", "method": "GET", "status": 200, "duration_ms": 1, "bytes": -5},
    {"type": "request", "method": "GET", "status": 200, "duration_ms": 1,
     "timestamp": T + 3600},
    {"type": "session_started"},
    {"type": "conversation_completed", "conversation_id": "c2", "messages": -1},
]


def _proto(event: dict[str, Any]) -> metrics_pb2.Event:
    """The same event as a gRPC client builds it."""
    fields = {k: v for k, v in event.items() if k != "timestamp"}
    message = json_format.ParseDict(fields, metrics_pb2.Event())
    if event.get("timestamp") is not None:
        message.timestamp.CopyFrom(timestamp_message(event["timestamp"]))
    return message


async def _series(suite: Suite) -> list[str]:
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(f"{suite.base}/metrics/prometheus",
                               headers=suite.headers())).text
    return [line for line in text.splitlines() if line.startswith(FROM_EVENTS)]


async def _grpc(suite: Suite, events: list[dict[str, Any]]
                ) -> metrics_service_pb2.RecordEventsResponse:
    async with suite_channel(f"127.0.0.1:{suite.ports['metrics']}", suite.settings) as channel:
        return await metrics_service_pb2_grpc.MetricsServiceStub(channel).RecordEvents(
            metrics_service_pb2.RecordEventsRequest(events=[_proto(e) for e in events]),
            timeout=30)


async def _rest(suite: Suite, events: list[dict[str, Any]]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(f"{suite.base}/metrics/events", json={"events": events},
                               headers=suite.headers("operator"))


async def test_the_same_batch_adds_up_to_the_same_figures_both_ways(make_settings, tmp_path):
    async with Suite(make_settings(data_dir=tmp_path / "rest"), components=("metrics",)) as a, \
            Suite(make_settings(data_dir=tmp_path / "grpc"), components=("metrics",)) as b:
        reply = await _rest(a, BATCH)
        assert reply.status_code == 202, reply.text
        recorded = await _grpc(b, BATCH)
        assert reply.json()["accepted"] == recorded.accepted == 7
        rest_errors = [(e["index"], e["message"]) for e in reply.json()["errors"]]
        assert rest_errors == [(e.index, e.message) for e in recorded.errors]
        assert [i for i, _ in rest_errors] == list(range(7, len(BATCH)))
        by_rest, by_grpc = await _series(a), await _series(b)
    assert by_rest == by_grpc
    assert 'botserver_requests_total{method="POST",status="502"} 1.0' in by_rest
    assert 'botserver_requests_total{method="OTHER",status="418"} 1.0' in by_rest


@pytest.mark.parametrize("events", [
    [],
    [{"type": "session_started", "session_id": "s"}] * 10_001,
    [{"type": "click"}],
    [{"type": "request", "method": "GET", "status": 99, "duration_ms": 1}],
    [{"type": "session_ended"}, {"type": "request", "timestamp": 1}],
], ids=["empty", "too-many", "type", "status", "two"])
async def test_each_refusal_reads_the_same_both_ways(make_settings, events):
    async with Suite(make_settings(), components=("metrics",)) as suite:
        reply = await _rest(suite, events)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _grpc(suite, events)
        series = await _series(suite)
    assert reply.status_code == 400, reply.text
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reply.json()["error"]["message"] == refused.value.details()
    assert not any(line.startswith("botserver_requests_total{") for line in series)
