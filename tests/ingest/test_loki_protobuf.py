"""Loki's protobuf push: snappy-compressed ``PushRequest`` bodies as Promtail sends them,
label strings parsed strictly, bad bodies refused whole; JSON push keeps working."""

from __future__ import annotations

import time
import uuid

import cramjam
import pytest

from botmon.loki.v1 import push_pb2
from services.logs.ingest import MAX_PUSH_LINES
from tests.ingest.support import read, stored

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def _job() -> str:
    return f"job-{uuid.uuid4().hex[:8]}"


def _push(streams: list[tuple[str, list[tuple[int, str, dict[str, str]]]]]
          ) -> push_pb2.PushRequest:
    """A PushRequest of (label string, [(ts ns, line, structured metadata)]) streams."""
    request = push_pb2.PushRequest()
    for labels, entries in streams:
        stream = request.streams.add(labels=labels)
        for ts, line, metadata in entries:
            entry = stream.entries.add(line=line)
            entry.timestamp.FromNanoseconds(ts)
            for name, value in metadata.items():
                entry.structured_metadata.add(name=name, value=value)
    return request


def _snappy(request: push_pb2.PushRequest) -> bytes:
    """As Promtail sends it: snappy block format (``snappy.Encode``), no framing."""
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


def _send(http, suite, body: bytes, headers=PROTOBUF):
    return http.post(f"{suite.url}/loki/api/v1/push", content=body,
                     headers={**suite.headers("operator"), **headers})


def test_streams_with_structured_metadata(suite, http):
    job, other = _job(), _job()
    t = time.time_ns() - 10**9
    request = _push([
        (f'{{job="{job}", env="prod", level="warning"}}',
         [(t, "payment slow", {}), (t + 1, "payment slower", {"trace_id": "abc", "level": "error"})]),
        (f'{{service="{other}", job="ignored", path="C:\\\\tmp\\t\\"x\\""}}',
         [(t + 2, "GET /users", {"user_id": "user_456"})]),
    ])
    response = _send(http, suite, _snappy(request))
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 3, "errors": []}
    first = read(http, suite, service=job)
    assert [(e["level"], e["message"], e["metadata"]) for e in first] == [
        ("warn", "payment slow", {"env": "prod", "level": "warning"}),
        ("error", "payment slower", {"env": "prod", "level": "error", "trace_id": "abc"}),
    ]
    (second,) = read(http, suite, service=other)
    assert second["metadata"] == {"job": "ignored", "path": 'C:\\tmp\t"x"',
                                  "user_id": "user_456"}
    assert [e["message"] for e in read(http, suite, **{"metadata[trace_id]": "abc"})] == [
        "payment slower"]


def test_bad_lines_are_reported_per_line_and_the_others_stored(suite, http):
    job = _job()
    t = time.time_ns()
    request = _push([(f'{{job="{job}"}}', [(t, "good", {}), (t, "", {}), (t // 10**6, "ms", {})]),
                     (f'{{job="{job}", b="1"}}', [(t, "good too", {})])])
    response = _send(http, suite, _snappy(request))
    assert response.status_code == 202
    errors = response.json()["errors"]
    assert [(e["batch"], e["index"]) for e in errors] == [(0, 1), (0, 2)]
    assert "message is required" in errors[0]["message"]
    assert "timestamp must lie" in errors[1]["message"]
    assert [e["message"] for e in read(http, suite, service=job)] == ["good", "good too"]


@pytest.mark.parametrize(("labels", "expected"), [
    ('{a="x",job="JOB"}', {"a": "x"}),
    (' { a = "x" , job="JOB", } ', {"a": "x"}),
    ("{a='it\\'s', job='JOB'}", {"a": "it's"}),
    ('{a=`raw\\n`, job=`JOB`}', {"a": "raw\\n"}),
    ('{job="JOB",a="\\u00e9\\xc3\\xa9\\101\\n"}', {"a": "ééA\n"}),
])
def test_label_strings_in_promql_syntax(suite, http, labels, expected):
    job = _job()
    request = _push([(labels.replace("JOB", job), [(time.time_ns(), "x", {})])])
    assert _send(http, suite, _snappy(request)).status_code == 202
    (entry,) = read(http, suite, service=job)
    assert entry["metadata"] == expected


@pytest.mark.parametrize(("labels", "says"), [
    ("{job=x}", "expected a quoted value"),
    ('job="x"', "expected '{'"),
    ('{job="x"', "expected ',' or '}'"),
    ('{job="x" env="y"}', "expected ',' or '}'"),
    ('{job="x", job="y"}', "'job' is repeated"),
    ('{job=~"x"}', "expected '='"),
    ('{1job="x"}', "expected a label name"),
    ('{job="\\q"}', "unknown escape"),
    ('{job="\\ud800"}', "not a Unicode character"),
    ('{job="\\xff"}', "not UTF-8"),
    ('{job="x"} trailing', "unexpected text"),
    ("{}", "at least one label"),
    ("", "expected '{'"),
])
def test_a_bad_label_string_refuses_the_push_naming_the_stream(suite, http, labels, says):
    before = stored(http, suite)
    request = _push([(f'{{job="{_job()}"}}', [(time.time_ns(), "fine", {})]),
                     (labels, [(time.time_ns(), "line", {})])])
    response = _send(http, suite, _snappy(request))
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert message.startswith("streams[1]: the label string does not parse") and says in message
    assert stored(http, suite) == before


def _valid_body() -> bytes:
    return _push([('{job="j"}', [(time.time_ns(), "x", {})])]).SerializeToString()


@pytest.mark.parametrize(("body", "headers", "code", "says"), [
    (bytes(cramjam.snappy.compress_raw(_valid_body()[:-3])), PROTOBUF, 400,
     "truncated or corrupt"),
    (b"\x20" + b"\xfe" * 40, PROTOBUF, 400, "not snappy-compressed"),
    (bytes(cramjam.snappy.compress_raw(_valid_body()))[:-4], PROTOBUF, 400,
     "not snappy-compressed"),
    (_valid_body(), PROTOBUF, 400, "snappy"),
    (b"", PROTOBUF, 400, "no length header"),
    (b"\xff\xff\xff\xff\x0f", PROTOBUF, 413, "larger than"),
    (b'{"streams": []}', {"Content-Type": "text/plain"}, 415, "application/x-protobuf"),
    (b'{"streams": [{"stream": {"job": "j"}, "values": [["1", "x", ' + b"[" * 40 + b"]" * 40
     + b"]]}]}", {"Content-Type": "application/json"}, 400, "more than 32 levels deep"),
    (bytes(cramjam.snappy.compress_raw(push_pb2.PushRequest().SerializeToString())), PROTOBUF,
     400, "streams is empty"),
], ids=["truncated-protobuf", "bad-snappy", "truncated-snappy", "not-compressed", "empty",
        "snappy-bomb", "content-type", "deep-json", "no-streams"])
def test_bad_bodies_are_4xx_saying_why_and_store_nothing(suite, http, body, headers, code,
                                                         says):
    before = stored(http, suite)
    response = _send(http, suite, body, headers)
    assert response.status_code == code, response.text
    assert says in response.json()["error"]["message"]
    assert stored(http, suite) == before


def test_json_push_keeps_working(suite, http):
    job = _job()
    body = {"streams": [{"stream": {"job": job}, "values": [
        [str(time.time_ns()), "json line", {"trace_id": "t1"}]]}]}
    response = http.post(f"{suite.url}/loki/api/v1/push", json=body,
                         headers=suite.headers("operator"))
    assert response.status_code == 202 and response.json()["accepted"] == 1
    (entry,) = read(http, suite, service=job)
    assert entry["metadata"] == {"trace_id": "t1"}


def test_only_operators_push(suite, http):
    body = bytes(cramjam.snappy.compress_raw(_valid_body()))
    response = http.post(f"{suite.url}/loki/api/v1/push", content=body,
                         headers={**suite.headers("viewer"), **PROTOBUF})
    assert response.status_code == 403
    assert http.post(f"{suite.url}/loki/api/v1/push", content=body,
                     headers=PROTOBUF).status_code == 401


def test_a_push_over_the_line_cap_is_refused_whole(suite, http):
    """The cap counts the whole push, here two streams each under it."""
    job = _job()
    t = time.time_ns()
    lines = [(t, "x", {})] * (MAX_PUSH_LINES // 2 + 1)
    body = _snappy(_push([(f'{{job="{job}"}}', lines), (f'{{job="{job}", b="1"}}', lines)]))
    before = stored(http, suite)
    response = _send(http, suite, body)
    assert response.status_code == 400, response.text
    assert (f"the request has {MAX_PUSH_LINES + 2} entries; send at most {MAX_PUSH_LINES}"
            in response.json()["error"]["message"])
    assert stored(http, suite) == before
