"""Request size and metadata caps: body 1 MiB (413), head 16 KiB (431), per-entry metadata
16 KiB in ``POST /logs``, and what the gateway forwards as gRPC metadata."""

from __future__ import annotations

import time

import jwt
import pytest

from gateway.app import MAX_BODY_BYTES, MAX_HEAD_BYTES
from gateway.auth import MAX_SUBJECT_CHARS
from tests.harness import Suite

SECRET = "jwt-secret-for-the-limit-tests-" + "0123456789abcdef" * 3
METADATA_CAP = 16 * 1024


@pytest.fixture
async def suite(make_settings):
    async with Suite(make_settings(jwt_secret=SECRET), components=("logs",)) as suite:
        yield suite


def post_routes(suite) -> list[str]:
    return sorted({route.ctx.template for route in suite.app.router.routes
                   if "POST" in route.methods})


async def test_every_post_route_refuses_a_body_over_one_mib(suite, http):
    oversized = b"[" + b" " * MAX_BODY_BYTES + b"]"
    routes = post_routes(suite)
    assert "/api/v1/monitoring/logs" in routes and "/loki/api/v1/push" in routes
    for template in routes:
        url = suite.url + template.replace("{", "").replace("}", "")
        r = await http.post(url, content=oversized, headers={
            **suite.headers("admin"), "Content-Type": "application/json"})
        assert r.status_code == 413, (template, r.text[:200])
        assert r.json()["error"]["code"] == 413 and "1048576" in r.json()["error"]["message"]


async def test_chunked_body_over_one_mib_is_refused(suite, http):
    async def chunks():
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b" " * 65536

    r = await http.post(f"{suite.base}/logs", content=chunks(), headers={
        **suite.headers("operator"), "Content-Type": "application/json"})
    assert r.status_code == 413


async def test_a_body_just_under_the_cap_is_read(suite, http):
    entry = '{"level": "info", "service": "cap", "message": "' + "m" * 900 + '"}'
    count = (MAX_BODY_BYTES - 20) // (len(entry) + 1)
    body = ('{"logs": [' + ",".join([entry] * count) + "]}").encode()
    assert len(body) <= MAX_BODY_BYTES
    r = await http.post(f"{suite.base}/logs", content=body, headers={
        **suite.headers("operator"), "Content-Type": "application/json"})
    assert r.status_code == 202 and r.json()["accepted"] == count


@pytest.mark.parametrize("where", ["header", "url"])
async def test_oversized_head_is_431_saying_what_to_shorten(suite, http, where):
    big = "a" * (MAX_HEAD_BYTES + 100)
    if where == "header":
        r = await http.get(f"{suite.base}/logs", headers={**suite.headers(), "X-Padding": big})
    else:
        r = await http.get(f"{suite.base}/logs?q={big}", headers=suite.headers())
    assert r.status_code == 431
    assert "headers too large" in r.json()["error"]["message"]


async def test_large_jwt_fits_in_the_head(suite, http):
    """Identity providers' tokens carry groups and the like: 8 KiB must be accepted."""
    token = jwt.encode({"sub": "idp-user", "role": "viewer", "exp": int(time.time()) + 60,
                        "groups": ["g" * 60] * 100}, SECRET, algorithm="HS256")
    assert len(token) > 8192
    r = await http.get(f"{suite.base}/logs", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text[:200]


async def test_jwt_subject_is_capped_before_it_becomes_grpc_metadata(suite, http):
    def token(sub: str) -> dict[str, str]:
        encoded = jwt.encode({"sub": sub, "role": "operator", "exp": int(time.time()) + 60},
                             SECRET, algorithm="HS256")
        return {"Authorization": f"Bearer {encoded}"}

    r = await http.get(f"{suite.base}/logs", headers=token("é" * MAX_SUBJECT_CHARS))
    assert r.status_code == 200
    r = await http.get(f"{suite.base}/logs", headers=token("a" * 11_000))
    assert r.status_code == 401 and "'sub'" in r.json()["error"]["message"]
    r = await http.get(f"{suite.base}/logs", headers=token(""))
    assert r.status_code == 401


async def test_request_id_is_capped_and_sanitised(suite, http):
    for given in ("r" * 129, "bad;id", "a b", "x" * 5000, "line\\nbreak"):
        r = await http.get(f"{suite.base}/logs", headers={**suite.headers(),
                                                          "X-Request-ID": given})
        assert r.status_code == 200
        assert r.headers["x-request-id"] != given and len(r.headers["x-request-id"]) <= 128
    r = await http.get(f"{suite.base}/logs", headers={**suite.headers(), "X-Request-ID": "ok-1"})
    assert r.headers["x-request-id"] == "ok-1"


def entry(service: str, metadata_bytes: int) -> dict:
    return {"level": "info", "service": service, "message": f"{metadata_bytes} bytes",
            "metadata": {"blob": "x" * metadata_bytes}}


async def test_metadata_over_the_cap_is_rejected_per_entry(suite, http):
    operator = suite.headers("operator")
    batch = [entry("meta-cap", 100), entry("meta-cap", METADATA_CAP + 1),
             entry("meta-cap", METADATA_CAP - 100), entry("meta-cap", 10 * METADATA_CAP)]
    r = await http.post(f"{suite.base}/logs", json={"logs": batch}, headers=operator)
    assert r.status_code == 202, r.text[:300]
    body = r.json()
    assert body["accepted"] == 2
    assert [e["index"] for e in body["errors"]] == [1, 3]
    assert all("16 KiB" in e["message"] for e in body["errors"])
    stored = (await http.get(f"{suite.base}/logs", params={"service": "meta-cap"},
                             headers=suite.headers())).json()
    assert sorted(e["message"] for e in stored["logs"]) == sorted(
        [f"{METADATA_CAP - 100} bytes", "100 bytes"])
    # A batch with nothing storable is a 400 that says why, not a 202.
    r = await http.post(f"{suite.base}/logs", json={"logs": [entry("meta-cap", 20_000)]},
                        headers=operator)
    assert r.status_code == 400 and "16 KiB" in r.json()["error"]["message"]
