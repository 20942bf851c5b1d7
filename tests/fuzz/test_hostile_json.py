"""Hostile JSON against every route that takes a JSON body, the OTLP/JSON route and the
WebSocket query parameters: never a 5xx, always a 4xx error body with a message.

The bodies are those that break parsers rather than schemas (Schemathesis covers
schemas): nesting far past any limit, very long strings, exponents that overflow
a double, integers past Python's digit limit, duplicate keys, lone UTF-16
surrogate escapes, invalid UTF-8 and truncated text. A Hypothesis property then
checks the nesting limit itself on ``POST /logs``: accepted up to 32 levels of
body (20 of metadata), refused with 400 beyond, whatever mix of arrays and objects.
"""

from __future__ import annotations

import asyncio
import json

import hypothesis.strategies as st
import pytest
import requests
import websockets
from hypothesis import HealthCheck, given, settings

from botmon.runtime.config import Settings
from gateway.openapi import build_openapi
from services.alerts.config import AlertsSettings
from tests.conftest import free_port
from tests.fuzz.live import ThreadedSuite
from tests.harness import COMPONENTS

TIMEOUT = 15


#: Path parameters: names nothing has, so such a route reads the body and then answers 404.
PATH_VALUES = {"name": "no_such_rule", "alert_id": "alt_0123456789abcdef"}
#: Valid bodies of the routes the OpenAPI document shows no example for.
BODIES = {
    "/v1/logs": {"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"body": {"stringValue": "hello"}, "severityNumber": 9}]}]}]},
    # All its fields are in the path; the body may repeat them, and the path wins.
    "/api/v1/monitoring/alerts/rules/{name}/test": {"name": PATH_VALUES["name"]},
}


def _routes() -> list[tuple[str, dict, bool]]:
    """Every POST route that takes JSON, its path filled in, a valid body to start from, and
    whether the path names something (that does not exist)."""
    found = []
    for template, item in build_openapi()["paths"].items():
        body = item.get("post", {}).get("requestBody", {}).get("content", {})
        if "application/json" in body:
            media = body["application/json"]
            example = media["example"] if "example" in media else BODIES[template]
            path = template.format_map(PATH_VALUES)
            found.append((path, example, path != template))
    return sorted(found, key=lambda p: p[0])


ROUTES = _routes()


def _with(example: dict, key: str, raw: str) -> bytes:
    """``example`` with one more top-level member ``key`` whose value is the raw JSON text."""
    text = json.dumps(example)
    return (text[:-1] + f', "{key}": {raw}}}').encode()


def _first_string(example) -> str | None:
    if isinstance(example, dict):
        for value in example.values():
            found = _first_string(value)
            if found:
                return found
    if isinstance(example, list):
        for value in example:
            found = _first_string(value)
            if found:
                return found
    return example if isinstance(example, str) and example else None


def _hostile(example: dict) -> dict[str, bytes]:
    text = json.dumps(example)
    some = _first_string(example) or "x"
    quoted = json.dumps(some)
    return {
        "100k-brackets": b"[" * 100_000,
        "100k-braces": b'{"a":' * 100_000,
        "5000-deep-object": ('{"a":' * 5000 + "1" + "}" * 5000).encode(),
        "40-deep-member": _with(example, "deep", "[" * 40 + "]" * 40),
        "long-string": text.replace(quoted, json.dumps("x" * 900_000), 1).encode(),
        "huge-exponent": _with(example, "n", "1e999999"),
        "negative-huge-exponent": _with(example, "n", "-1e999999"),
        "tiny-exponent": _with(example, "n", "1e-999999"),
        "5000-digit-integer": _with(example, "n", "9" * 5000),
        "nan": _with(example, "n", "NaN"),
        "duplicate-keys": (text[:-1] + ", " + text[1:]).encode(),
        "lone-surrogate-value": text.replace(quoted, '"\\ud800"', 1).encode(),
        "lone-surrogate-key": ('{"\\udfff": 1, ' + text[1:]).encode(),
        "invalid-utf8": text.encode().replace(b'"', b'"\xff', 1),
        "truncated": text.encode()[:-3],
    }


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    closed = f"http://127.0.0.1:{free_port()}/"
    settings = Settings.from_env({}, data_dir=tmp_path_factory.mktemp("hostile"),
                                 alert_eval_interval=3600.0, pagerduty_url=closed,
                                 sms_gateway_url=closed)
    alerts = AlertsSettings.from_env({"BOTMON_WEBHOOK_ALLOW": "!0.0.0.0/0,!::/0"})
    with ThreadedSuite(settings, COMPONENTS,
                       options={"alerts": {"alerts_settings": alerts}}) as suite:
        with requests.Session() as session:
            yield suite, session


CASES = [(path, name, body, names) for path, example, names in ROUTES
         for name, body in _hostile(example).items()]


@pytest.mark.parametrize(("path", "name", "body", "names_nothing"), CASES,
                         ids=[f"{path}:{name}" for path, name, _, _ in CASES])
def test_hostile_bodies_are_4xx_with_a_message(live, path, name, body, names_nothing):
    suite, session = live
    response = session.post(suite.url + path, data=body, timeout=TIMEOUT, headers={
        **suite.headers("admin"), "Content-Type": "application/json"})
    assert response.status_code < 500, response.text[:300]
    if names_nothing:  # refused for the body, or else as not found
        assert response.status_code >= 400, response.text[:300]
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["message"] and error["code"] == response.status_code
        assert "upb" not in error["message"] and "Traceback" not in error["message"]


@pytest.mark.parametrize("query", [
    "metadata.n=" + "9" * 5000,
    "metadata.n=1e999999",
    "metadata.n=%ED%A0%80",
    "q=%ED%A0%80",
    "metadata%5B%ED%A0%80%5D=x",
    "level=" + "x" * 10_000,
    "metadata.a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z=1",
], ids=["digits", "exponent", "surrogate-value", "surrogate-q", "surrogate-key", "long",
        "deep-path"])
def test_hostile_websocket_query_parameters(live, query):
    suite, _ = live

    async def tail() -> dict | None:
        async with websockets.connect(f"{suite.ws_url}/ws/logs?{query}",
                                      additional_headers=suite.headers(), open_timeout=5,
                                      close_timeout=2, max_size=None) as socket:
            try:
                return json.loads(await asyncio.wait_for(socket.recv(), 1.0))
            except TimeoutError:
                return None  # subscribed and waiting for entries: accepted

    frame = asyncio.run(tail())
    if frame is not None:
        assert frame["type"] == "error" and frame["error"]["code"] < 500, frame
        assert frame["error"]["message"]


def _nested(kinds: list[bool], leaf: str) -> str:
    """JSON text nesting one array (True) or object (False) per item of ``kinds``."""
    text = leaf
    for is_array in reversed(kinds):
        text = f"[{text}]" if is_array else f'{{"k":{text}}}'
    return text


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(kinds=st.lists(st.booleans(), min_size=1, max_size=60),
       leaf=st.sampled_from(['"v"', "1", "true", "null", "2.5", "[]", "{}"]))
def test_nesting_limit_on_log_metadata(live, kinds, leaf):
    suite, session = live
    # Metadata is an object around the generated value; an empty leaf container is a level.
    depth = len(kinds) + 1 + (leaf in ("[]", "{}"))
    body = ('{"logs":[{"level":"info","service":"nest","message":"m","metadata":{"m":'
            + _nested(kinds, leaf) + "}}]}")
    response = session.post(f"{suite.base}/logs", data=body.encode(), timeout=TIMEOUT, headers={
        **suite.headers("operator"), "Content-Type": "application/json"})
    if depth + 3 > 32:  # body object, logs array, entry object
        assert response.status_code == 400, response.text[:200]
        assert "more than 32 levels deep" in response.json()["error"]["message"]
    elif depth > 20:
        assert response.status_code == 400, response.text[:200]
        assert "more than 20 levels deep" in response.json()["error"]["message"]
    else:
        assert response.status_code == 202, response.text[:200]
