"""Issue 18 items 6, 7 and 10: failed logins limited, token subjects hashed, JWTs bounded."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

import grpc
import jwt
import pytest

from botmon.debug.v1 import debug_service_pb2, debug_service_pb2_grpc
from botmon.runtime.channels import open_channel
from tests.harness import Suite

ROOT = Path(__file__).resolve().parents[2]
SECRET = "hs256-secret-of-the-review-tests-" + "5a" * 16


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---------------------------------------------------------------- 18.6 failed logins

@pytest.fixture(params=["memory", "redis"])
async def limited(request, make_settings):
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    settings = make_settings({"BOTMON_RATE_LIMITS": "auth_failures=5/minute"},
                             redis_url=redis_url)
    async with Suite(settings, components=(), rate_limited=True) as suite:
        yield suite


async def test_failed_logins_are_limited_per_ip_with_retry_after(limited, http):
    statuses = [(await http.get(f"{limited.base}/alerts/rules",
                                headers=bearer(f"guess-{i:04d}-0123456789abcdef"))).status_code
                for i in range(8)]
    assert statuses == [401] * 5 + [429] * 3
    refused = await http.get(f"{limited.base}/alerts/rules", headers=bearer("one-more-guess-xyz"))
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    # A blocked address learns nothing from a right guess either.
    right = await http.get(f"{limited.base}/alerts/rules", headers=limited.headers("viewer"))
    assert right.status_code == 429


async def test_requests_without_credentials_do_not_spend_the_budget(limited, http):
    for _ in range(10):
        assert (await http.get(f"{limited.base}/alerts/rules")).status_code == 401
    assert (await http.get(f"{limited.base}/metrics",
                           headers=limited.headers("viewer"))).status_code != 429


# ---------------------------------------------------------------- 18.7 token subjects

async def test_a_token_without_subject_gets_a_hashed_one(make_settings, http):
    token = "abcdSECRETtokenWithoutSubject-0123"
    settings = make_settings({"BOTMON_API_TOKENS": f"{token}:operator"})
    async with Suite(settings, components=("alerts",)) as suite:
        r = await http.post(f"{suite.base}/alerts/silences", headers=bearer(token),
                            json={"matchers": [{"name": "alertname", "value": "x"}],
                                  "ends_at": "2099-01-01T00:00:00Z"})
    assert r.status_code in (200, 201), r.text
    created_by = r.json()["silence"]["created_by"]
    assert created_by == "token-" + hashlib.sha256(token.encode()).hexdigest()[:12]
    assert "abcd" not in created_by


# ---------------------------------------------------------------- 18.10 JWT bounds

def _jwt(**claims) -> str:
    now = int(time.time())
    return jwt.encode({"sub": "alice", "role": "admin", "iat": now, "exp": now + 60, **claims},
                      SECRET, algorithm="HS256")


@pytest.fixture
async def issuer_suite(make_settings):
    settings = make_settings({"BOTMON_JWT_ISSUER": "https://idp.example",
                              "BOTMON_JWT_AUDIENCE": "botmon", "BOTMON_JWT_SECRET": SECRET})
    async with Suite(settings, components=("logs",)) as suite:
        yield suite


@pytest.mark.parametrize(("claims", "status", "fragment"), [
    ({"iss": "https://idp.example", "aud": "botmon"}, 200, ""),
    ({"iss": "https://idp.example", "aud": ["other", "botmon"]}, 200, ""),
    ({"aud": "botmon"}, 401, "'iss'"),
    ({"iss": "https://evil.example", "aud": "botmon"}, 401, "'iss'"),
    ({"iss": "https://idp.example"}, 401, "'aud'"),
    ({"iss": "https://idp.example", "aud": "other"}, 401, "'aud'"),
    ({"iss": "https://idp.example", "aud": "botmon", "exp": 253402300799}, 401, "lifetime"),
    ({"iss": "https://idp.example", "aud": "botmon", "iat": 253402296000,
      "exp": 253402300799}, 401, "(iat)"),
    ({"iss": "https://idp.example", "aud": "botmon", "iat": int(time.time()) - 86400 * 2,
      "exp": int(time.time()) + 3600}, 401, "lifetime"),
])
async def test_jwt_issuer_audience_and_lifetime(issuer_suite, http, claims, status, fragment):
    r = await http.get(f"{issuer_suite.base}/logs", headers=bearer(_jwt(**claims)))
    assert r.status_code == status, r.text
    if fragment:
        assert fragment in r.json()["error"]["message"]


async def test_jwt_bounds_hold_on_grpc_too(issuer_suite):
    good = _jwt(iss="https://idp.example", aud="botmon")
    forever = _jwt(iss="https://idp.example", aud="botmon", exp=253402300799)
    async with open_channel(issuer_suite.settings.target("logs")) as channel:
        stub = debug_service_pb2_grpc.DebugServiceStub(channel)
        reply = await stub.GetDebugInfo(debug_service_pb2.GetDebugInfoRequest(), timeout=5,
                                        metadata=(("authorization", f"Bearer {good}"),))
        assert reply.service == "logs"
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetDebugInfo(debug_service_pb2.GetDebugInfoRequest(), timeout=5,
                                    metadata=(("authorization", f"Bearer {forever}"),))
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "BOTMON_JWT_MAX_LIFETIME" in refused.value.details()


def test_short_hs256_secret_is_refused_at_start_with_one_line(tmp_path):
    env = {"BOTMON_JWT_SECRET": "x" * 30, "BOTMON_DATA_DIR": str(tmp_path), "PATH": "/usr/bin"}
    run = subprocess.run([sys.executable, "-m", "botmon.cli", "serve", "logs"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("botmon: BOTMON_JWT_SECRET:"), run.stderr
    assert "32 bytes" in lines[0]
