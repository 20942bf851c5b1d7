"""Malformed input that used to answer 500 with a traceback: each is a 400 with a plain
message now (security review, finding 12), and nothing is stored from it."""

from __future__ import annotations

import asyncio
import base64
import json

import grpc
import httpx
import pytest
import websockets
from google.protobuf import struct_pb2
from google.protobuf.internal.encoder import _VarintBytes

from botmon.logs.v1 import log_entry_pb2
from tests.conftest import suite_channel
from tests.ingest.support import read, stored


def _plain(response, says: str) -> None:
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert says in message
    assert "upb" not in message and "Traceback" not in message and "sys." not in message


@pytest.mark.parametrize(("stamp", "says"), [
    ("²", "Unix nanoseconds as a string"),
    ("9" * 5000, "timestamp has 5000 digits"),
    ("١٧٠٥٣١٢٨٠٠٠٠٠٠٠٠٠٠٠٠", "Unix nanoseconds as a string"),
])
def test_loki_timestamps_that_are_not_nanoseconds(suite, http, stamp, says):
    before = stored(http, suite)
    body = {"streams": [{"stream": {"job": "j"}, "values": [[stamp, "line"]]}]}
    _plain(http.post(f"{suite.url}/loki/api/v1/push", json=body,
                     headers=suite.headers("operator")), says)
    assert stored(http, suite) == before


def test_a_cursor_holding_a_position_beyond_64_bits(suite, http):
    http.post(f"{suite.base}/logs", headers=suite.headers("operator"),
              json={"logs": [{"level": "info", "service": "cursor", "message": str(i)}
                             for i in range(3)]})
    page = http.get(f"{suite.base}/logs", params={"limit": 1, "service": "cursor"},
                    headers=suite.headers("viewer")).json()
    cursor = page["next_cursor"]
    position = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    for index in range(3):
        forged = list(position)
        forged[index] = 10**30
        text = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode()
        _plain(http.get(f"{suite.base}/logs", params={"limit": 1, "service": "cursor",
                                                      "cursor": text},
                        headers=suite.headers("viewer")), "cursor is not a cursor of this API")


@pytest.mark.parametrize("depth", [33, 40, 5000, 100_000])
def test_deeply_nested_json(suite, http, depth):
    before = stored(http, suite)
    metadata = '{"a":' * depth + "1" + "}" * depth
    body = '{"logs": [{"level": "info", "service": "deep", "message": "m", "metadata": ' \
           + metadata + "}]}"
    _plain(http.post(f"{suite.base}/logs", content=body,
                     headers={**suite.headers("operator"), "Content-Type": "application/json"}),
           "nests objects and arrays more than 32 levels deep")
    assert stored(http, suite) == before


def test_metadata_deeper_than_20_levels_is_refused_per_entry(suite, http):
    nested: object = "leaf"
    for _ in range(21):
        nested = {"a": nested}
    response = http.post(f"{suite.base}/logs", headers=suite.headers("operator"), json={
        "logs": [{"level": "info", "service": "deep20", "message": "flat"},
                 {"level": "info", "service": "deep20", "message": "deep", "metadata": nested}]})
    assert response.status_code == 202
    assert "more than 20 levels deep" in response.json()["errors"][0]["message"]
    assert [e["message"] for e in read(http, suite, service="deep20")] == ["flat"]


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field, encoded by hand: the Python runtime refuses to
    build a message nested this deep, which is the point."""
    return _VarintBytes(number << 3 | 2) + _VarintBytes(len(payload)) + payload


def _nested_struct(depth: int) -> bytes:
    struct = struct_pb2.Struct(fields={"leaf": struct_pb2.Value(number_value=1)})
    data = struct.SerializeToString()
    for _ in range(depth - 1):
        # Struct.fields entry {key: "a", value: Value{struct_value: <data>}}
        data = _field(1, _field(1, b"a") + _field(2, _field(5, data)))
    return data


async def test_grpc_request_nested_beyond_protobuf_decoding(suite):
    entry = log_entry_pb2.LogEntry(level="info", service="grpc-deep", message="m")
    request = _field(1, entry.SerializeToString() + _field(5, _nested_struct(40)))
    async with suite_channel(f"127.0.0.1:{suite.ports['logs']}", suite.settings) as channel:
        write = channel.unary_unary("/botmon.logs.v1.LogsService/WriteLogs")
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await write(request, timeout=10)
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "more than 100 levels deep" in failed.value.details()
    assert "upb" not in failed.value.details()


async def test_a_5000_digit_metadata_matcher(suite):
    digits = "9" * 5000
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{suite.base}/logs", params={"metadata[n]": digits},
                                  headers=suite.headers("viewer"))
        assert response.status_code == 200 and response.json()["logs"] == []
        async with websockets.connect(f"{suite.ws_url}/ws/logs?metadata.n={digits}",
                                      additional_headers=suite.headers(), open_timeout=5,
                                      close_timeout=2, max_size=None) as socket:
            # Entries stored before the tail subscribed are not sent: write until one is.
            for _ in range(20):
                await http.post(f"{suite.base}/logs", headers=suite.headers("operator"), json={
                    "logs": [{"level": "info", "service": "big", "message": "wide",
                              "metadata": {"n": digits}}]})
                try:
                    frame = json.loads(await asyncio.wait_for(socket.recv(), 0.5))
                    break
                except TimeoutError:
                    continue
            else:
                raise AssertionError("the tail never delivered an entry")
    assert frame["type"] == "log" and frame["log"]["metadata"]["n"] == digits


async def test_a_corrupt_message_in_a_request_stream(suite):
    good = _field(1, log_entry_pb2.LogEntry(level="info", service="stream-corrupt",
                                            message="m").SerializeToString())
    async with suite_channel(f"127.0.0.1:{suite.ports['logs']}", suite.settings) as channel:
        ingest = channel.stream_unary("/botmon.logs.v1.LogsService/IngestLogs")
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await ingest(iter([good, good[:-2]]), timeout=10)
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid botmon.logs.v1.IngestLogsRequest" in failed.value.details()
