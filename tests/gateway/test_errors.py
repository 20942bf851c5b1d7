"""The error format and every gRPC -> HTTP mapping, through real HTTP and gRPC."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.gateway.fakes import DOMAIN_ERRORS, RecordingAlerts, RecordingLogs
from tests.harness import Suite

EXPECTED = {"INVALID_ARGUMENT": 400, "NOT_FOUND": 404, "ALREADY_EXISTS": 409,
            "FAILED_PRECONDITION": 412, "PERMISSION_DENIED": 403, "UNAUTHENTICATED": 401,
            "RESOURCE_EXHAUSTED": 429, "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504}


@pytest.fixture
async def suite(make_settings):
    servicers = {"logs": RecordingLogs(), "alerts": RecordingAlerts()}
    async with Suite(make_settings(grpc_deadline=0.5), components=(),
                     servicers=servicers) as suite:
        yield suite


def assert_error(r, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    error = r.json()["error"]
    assert set(error) == {"code", "status", "message", "details"}
    assert (error["code"], error["status"]) == (status, code)
    assert error["message"]
    return error


async def test_every_domain_error_maps_as_grpc_gateway_does(suite, http):
    assert set(EXPECTED) == set(DOMAIN_ERRORS)
    for code, status in EXPECTED.items():
        r = await http.get(f"{suite.base}/logs", params={"q": f"raise:{code}"},
                           headers=suite.headers())
        error = assert_error(r, status, code)
        assert f"test error {code}" in error["message"]
    r = await http.get(f"{suite.base}/logs", params={"q": "raise:INTERNAL"},
                       headers=suite.headers())
    assert_error(r, 500, "INTERNAL")


async def test_unimplemented_rpc_is_501(suite, http):
    # The recording alerts servicer does not implement ListAlertRules.
    r = await http.get(f"{suite.base}/alerts/rules", headers=suite.headers())
    error = assert_error(r, 501, "UNIMPLEMENTED")
    assert "alerts" in error["message"]


async def test_backend_down_is_503_naming_it_then_recovers(suite, http):
    await suite.stop("logs")
    started = time.monotonic()
    r = await http.get(f"{suite.base}/logs", headers=suite.headers())
    error = assert_error(r, 503, "UNAVAILABLE")
    assert "logs service" in error["message"]
    assert time.monotonic() - started < 3
    r = await http.get(f"{suite.base}/metrics", headers=suite.headers())
    assert "metrics service" in assert_error(r, 503, "UNAVAILABLE")["message"]
    await suite.start("logs")
    for _ in range(50):
        r = await http.get(f"{suite.base}/logs", headers=suite.headers())
        if r.status_code == 200:
            break
        await asyncio.sleep(0.1)
    assert r.status_code == 200


async def test_slow_backend_is_504(suite, http):
    started = time.monotonic()
    r = await http.get(f"{suite.base}/logs", params={"q": "sleep:3"}, headers=suite.headers())
    error = assert_error(r, 504, "DEADLINE_EXCEEDED")
    assert "logs" in error["message"]
    assert time.monotonic() - started < 2.5


async def test_unknown_route_and_method(suite, http):
    r = await http.get(f"{suite.base}/nothing/here", headers=suite.headers())
    assert_error(r, 404, "NOT_FOUND")
    r = await http.put(f"{suite.base}/logs", headers=suite.headers("admin"), json={})
    assert r.status_code == 405
    assert r.json()["error"]["code"] == 405


async def test_body_over_one_mib_is_413(suite, http):
    big = b'{"logs": [{"message": "' + b"x" * (1024 * 1024) + b'"}]}'
    r = await http.post(f"{suite.base}/logs", content=big,
                        headers={**suite.headers("operator"), "Content-Type": "application/json"})
    error = assert_error(r, 413, "INVALID_ARGUMENT")
    assert "1048576" in error["message"]
    assert not any(name == "WriteLogsHttp" for name, *_ in suite.servicers["logs"].calls)


@pytest.mark.parametrize(("body", "fragment"), [
    (b'{"logs": [', "malformed JSON"),
    (b'[1, 2]', "expected a JSON object"),
    (b'{"logs": {"level": "info"}}', "'logs': expected an array"),
    (b'{"logs": [{"level": 5}]}', "'logs[0].level': expected a string"),
    (b'{"logs": [{"lvl": "info"}]}', "'logs[0].lvl': unknown field"),
    (b'{"logs": [{"timestamp": "yesterday"}]}', "'logs[0].timestamp': expected an RFC 3339"),
    (b'{"logs": [{"timestamp": "2024-02-30T00:00:00Z"}]}', "not a valid date"),
    (b'{"logs": [{"id": 9223372036854775808}]}', "'logs[0].id': out of range"),
    (b'{"logs": [{"id": 1.5}]}', "'logs[0].id': expected a whole number"),
    (b'{"logs": [{"id": 1e999}]}', "out of range"),
    (b'{"logs": [{"id": NaN}]}', "not valid JSON"),
    (b'\xff\xfe', "not UTF-8"),
])
async def test_bad_bodies_are_400_saying_what_to_fix(make_settings, http, body, fragment):
    # The logs service reads the body (WriteLogsHttp): the real one answers.
    async with Suite(make_settings(), components=("logs",)) as suite:
        r = await http.post(f"{suite.base}/logs", content=body, headers={
            **suite.headers("operator"), "Content-Type": "application/json"})
    error = assert_error(r, 400, "INVALID_ARGUMENT")
    assert fragment in error["message"]


@pytest.mark.parametrize(("params", "fragment"), [
    ({"colour": "red", "size": "2"}, "unknown query parameters colour, size"),
    ({"limit": "many"}, "'limit': expected a whole number"),
    ({"limit": "99999999999"}, "'limit': out of range"),
    ({"start_time": "2024-13-01T00:00:00Z"}, "'start_time'"),
    ({"start_time": "soon"}, "RFC 3339"),
    ({"limit": ["1", "2"]}, "given 2 times"),
    ({"logs": "x"}, "unknown query parameter logs"),
])
async def test_bad_query_parameters_are_400(suite, http, params, fragment):
    r = await http.get(f"{suite.base}/logs", params=params, headers=suite.headers())
    error = assert_error(r, 400, "INVALID_ARGUMENT")
    assert fragment in error["message"]


async def test_body_star_routes_take_no_query_parameters(suite, http):
    r = await http.post(f"{suite.base}/logs?service=x", json={"logs": []},
                        headers=suite.headers("operator"))
    assert "service" in assert_error(r, 400, "INVALID_ARGUMENT")["message"]
