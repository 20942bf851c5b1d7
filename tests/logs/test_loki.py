"""Loki push compatibility over gRPC: labels, values, structured metadata, levels, bad lines."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import json_format

from botmon.logs.v1 import logs_service_pb2 as pb
from tests.logs.support import now


def push(body: dict) -> pb.PushLokiRequest:
    """A PushLokiRequest from Loki's JSON body, as the gateway binds it."""
    return json_format.ParseDict(body, pb.PushLokiRequest())


def ns(seconds: float) -> str:
    return str(int(seconds * 1e9))


async def _push(logs, body: dict) -> pb.PushLokiResponse:
    return await logs.stub.PushLoki(push(body), timeout=30)


async def test_streams_become_entries(logs):
    t = now() - 10
    reply = await _push(logs, {"streams": [
        {"stream": {"job": "checkout", "env": "prod", "level": "warning"},
         "values": [[ns(t), "payment slow"], [ns(t + 1), "payment slower"]]},
        {"stream": {"service": "api", "job": "ignored-when-service-set"},
         "values": [[ns(t + 2), "GET /users", {"trace_id": "abc", "level": "error"}]]},
        {"stream": {"service_name": "otel-svc", "detected_level": "debug"},
         "values": [[ns(t + 3), "span done"]]},
        {"stream": {"host": "h1"}, "values": [[ns(t + 4), "who am i"]]},
    ]})
    assert reply.accepted == 5 and not reply.errors
    page = await logs.list(order="asc")
    got = [(e.service, e.level, e.message, dict(e.metadata)) for e in page.logs]
    assert got == [
        ("checkout", "warn", "payment slow", {"env": "prod", "level": "warning"}),
        ("checkout", "warn", "payment slower", {"env": "prod", "level": "warning"}),
        ("api", "error", "GET /users", {"job": "ignored-when-service-set", "trace_id": "abc",
                                        "level": "error"}),
        ("otel-svc", "debug", "span done", {"detected_level": "debug"}),
        ("unknown", "info", "who am i", {"host": "h1"}),
    ]
    assert page.logs[0].timestamp.ToNanoseconds() == int(ns(t))


async def test_unreadable_level_is_stored_as_info_and_kept(logs):
    await _push(logs, {"streams": [{"stream": {"job": "j", "level": "LOUD"},
                                    "values": [[ns(now()), "x"]]}]})
    (stored,) = (await logs.list()).logs
    assert stored.level == "info" and stored.metadata["level"] == "LOUD"


async def test_labels_are_searchable_metadata(logs):
    await _push(logs, {"streams": [
        {"stream": {"job": "a", "env": "prod"}, "values": [[ns(now()), "one"]]},
        {"stream": {"job": "a", "env": "dev"}, "values": [[ns(now()), "two"]]}]})
    page = await logs.list(metadata={"env": "prod"})
    assert [e.message for e in page.logs] == ["one"]


async def test_bad_lines_are_reported_per_line(logs):
    t = now()
    reply = await _push(logs, {"streams": [
        {"stream": {"job": "j"}, "values": [
            [ns(t), "good"],
            ["soon", "bad timestamp"],
            [ns(t), 42],
            [ns(t)],
            [ns(t), "x", "not an object"],
            [ns(t), ""],
            [str(int(t * 1e3)), "milliseconds"],
        ]},
        {"stream": {"job": "k"}, "values": [[ns(t), "also good"], [ns(t), "y", {}, "extra"]]},
    ]})
    assert reply.accepted == 2
    errors = [(e.batch, e.index, e.message) for e in reply.errors]
    assert [(b, i) for b, i, _ in errors] == [(0, 1), (0, 2), (0, 3), (0, 4), (0, 5), (0, 6),
                                              (1, 1)]
    messages = [m for _, _, m in errors]
    assert "Unix nanoseconds as a string" in messages[0]
    assert "must be a string" in messages[1]
    assert "[timestamp, line]" in messages[2]
    assert "must be an object" in messages[3]
    assert "message is required" in messages[4]
    assert "between 2000-01-01" in messages[5]
    assert "[timestamp, line]" in messages[6]


async def test_a_push_without_a_good_line_is_refused(logs):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _push(logs, {"streams": [{"stream": {"job": "j"}, "values": [["x", "y"]]}]})
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "values[0]: timestamp must be Unix nanoseconds" in info.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _push(logs, {"streams": []})
    assert "streams is empty" in info.value.details()
