"""Authentication and roles: static tokens, HS256/RS256 JWTs, 401/403, admin bootstrap."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import stat
import time

import jwt
import pytest
import websockets

from botmon.runtime.config import ApiToken
from gateway.app import create_app
from tests.gateway.fakes import RecordingAlerts, RecordingLogs, RecordingMetrics
from tests.harness import Suite

SECRET = "s3cret-for-hs256-tests-0123456789abcdef"


@pytest.fixture
async def suite(make_settings, rsa_keys):
    servicers = {"logs": RecordingLogs(), "alerts": RecordingAlerts(),
                 "metrics": RecordingMetrics()}
    settings = make_settings(jwt_secret=SECRET, jwt_public_key=rsa_keys[1])
    async with Suite(settings, components=(), servicers=servicers) as suite:
        yield suite


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def hs256_signed_with(key: str, payload: dict) -> str:
    """A JWT signed by hand, which PyJWT refuses to do with a PEM key as HMAC secret."""
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(payload).encode())
    mac = hmac.new(key.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


def claims(**extra) -> dict:
    return {"sub": "alice", "role": "viewer", "exp": int(time.time()) + 60, **extra}


async def test_static_tokens_and_roles(suite, http):
    r = await http.get(f"{suite.base}/logs", headers=suite.headers("viewer"))
    assert r.status_code == 200
    r = await http.post(f"{suite.base}/logs", json={"logs": []}, headers=suite.headers("viewer"))
    assert r.status_code == 403 and r.json()["error"]["status"] == "PERMISSION_DENIED"
    r = await http.post(f"{suite.base}/logs", json={"logs": []},
                        headers=suite.headers("operator"))
    assert r.status_code == 202
    r = await http.get(f"{suite.base}/debug/info", headers=suite.headers("operator"))
    assert r.status_code == 403


async def test_missing_and_bad_credentials_are_401_with_challenge(suite, http):
    r = await http.get(f"{suite.base}/logs")
    assert r.status_code == 401 and r.json()["error"]["status"] == "UNAUTHENTICATED"
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert "invalid_token" not in r.headers["www-authenticate"]
    for headers in (bearer("not-a-token"), {"Authorization": "Basic dXNlcjpwYXNz"}):
        r = await http.get(f"{suite.base}/logs", headers=headers)
        assert r.status_code == 401
    r = await http.get(f"{suite.base}/logs", headers=bearer("not-a-token"))
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    assert not any(n == "ListLogs" for n, *_ in suite.servicers["logs"].calls)


async def test_hs256_and_rs256_jwts(suite, http, rsa_keys):
    hs = jwt.encode(claims(role="operator"), SECRET, algorithm="HS256")
    r = await http.post(f"{suite.base}/logs", json={"logs": []}, headers=bearer(hs))
    assert r.status_code == 202
    _, metadata = suite.servicers["logs"].last("WriteLogsHttp")
    assert (metadata["x-botmon-subject"], metadata["x-botmon-role"]) == ("alice", "operator")
    rs = jwt.encode(claims(sub="bob", role="admin"), rsa_keys[0], algorithm="RS256")
    r = await http.get(f"{suite.base}/debug/info", headers=bearer(rs))
    assert r.status_code == 200


@pytest.mark.parametrize(("make", "fragment"), [
    (lambda k: jwt.encode(claims(exp=int(time.time()) - 60), SECRET, "HS256"), "expired"),
    (lambda k: jwt.encode(claims(), "another-secret-0123456789abcdefghij", "HS256"), "invalid"),
    (lambda k: jwt.encode({"sub": "a", "exp": int(time.time()) + 60}, SECRET, "HS256"), "role"),
    (lambda k: jwt.encode(claims(role="root"), SECRET, "HS256"), "role"),
    (lambda k: jwt.encode({"role": "viewer", "exp": int(time.time()) + 60}, SECRET, "HS256"),
     "'sub'"),
    (lambda k: jwt.encode({"sub": "a", "role": "viewer"}, SECRET, "HS256"), "'exp'"),
    (lambda k: jwt.encode(claims(), SECRET * 2, "HS512"), "algorithm 'HS512'"),
    (lambda k: jwt.encode(claims(), None, "none"), "algorithm 'none'"),
    # The RSA public key used as an HMAC secret: the classic confusion attack.
    (lambda k: hs256_signed_with(k[1], claims(role="admin")), "invalid"),
])
async def test_bad_jwts_are_401(suite, http, rsa_keys, make, fragment):
    r = await http.get(f"{suite.base}/logs", headers=bearer(make(rsa_keys)))
    assert r.status_code == 401, r.text
    assert fragment in r.json()["error"]["message"]
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


async def test_forbidden_before_existence(suite, http):
    r = await http.delete(f"{suite.base}/alerts/rules/does-not-exist",
                          headers=suite.headers("viewer"))
    assert r.status_code == 403
    r = await http.post(f"{suite.base}/alerts/nope/acknowledge", json={},
                        headers=suite.headers("viewer"))
    assert r.status_code == 403
    assert suite.servicers["alerts"].calls == []
    r = await http.delete(f"{suite.base}/alerts/rules/does-not-exist",
                          headers=suite.headers("operator"))
    assert r.status_code == 404


async def test_health_probes_need_no_token(suite, http):
    # No health service runs here: the suite is unhealthy and not ready, the gateway is live.
    expected = {"/health": 503, "/health/live": 200, "/health/ready": 503}
    for path, status in expected.items():
        r = await http.get(f"{suite.base}{path}")
        assert r.status_code == status, (path, r.text)
    r = await http.get(f"{suite.base}/health/detailed")
    assert r.status_code == 401


async def test_websocket_token_in_query_or_header(suite):
    url = f"{suite.ws_url}/ws/metrics?interval=1&access_token={suite.tokens['viewer']}"
    async with websockets.connect(url, open_timeout=5) as ws:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert frame["type"] == "metric_update"
    async with websockets.connect(f"{suite.ws_url}/api/v1/monitoring/ws/metrics",
                                  additional_headers=suite.headers("viewer"),
                                  open_timeout=5) as ws:
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "metric_update"
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(f"{suite.ws_url}/ws/metrics", open_timeout=5):
            pass
    assert refused.value.response.status_code == 401
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(f"{suite.ws_url}/ws/logs?access_token=wrong-token",
                                      open_timeout=5):
            pass
    assert refused.value.response.status_code == 401


async def test_admin_token_bootstrap(make_settings, tmp_path, capsys, http):
    settings = make_settings(data_dir=tmp_path / "data", api_tokens=())
    create_app(settings)
    path = tmp_path / "data" / "admin-token"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    token = path.read_text().strip()
    assert token in capsys.readouterr().out
    # A second start reuses the token and does not print the secret again.
    app = create_app(settings)
    assert token not in capsys.readouterr().out
    assert [t.token for t in app.ctx.authenticator.tokens] == [token]
    # And it is a working admin credential through a real gateway.
    async with Suite(settings, components=()) as suite:
        suite.app.ctx.authenticator.tokens = (ApiToken(token, "admin", "admin"),)
        r = await http.get(f"{suite.base}/debug/info", headers=bearer(token))
        assert r.status_code == 200


@pytest.mark.parametrize("credential", ["api_tokens", "jwt_secret", "jwt_public_key"])
def test_no_admin_token_is_created_when_any_credential_is_configured(make_settings, tmp_path,
                                                                    capsys, rsa_keys, credential):
    value = {"api_tokens": (ApiToken("configured-token-0123456789", "viewer", "ops"),),
             "jwt_secret": SECRET, "jwt_public_key": rsa_keys[1]}[credential]
    app = create_app(make_settings(data_dir=tmp_path / "data", **{credential: value}))
    assert not (tmp_path / "data" / "admin-token").exists()
    assert "admin token" not in capsys.readouterr().out
    assert all(t.role != "admin" or t.subject != "admin" for t in app.ctx.authenticator.tokens)


async def test_debug_info_gathers_every_process_without_secrets(make_settings, http):
    settings = make_settings(jwt_secret=SECRET, redis_url=None,
                             smtp_password="hunter2-smtp-password")
    async with Suite(settings, components=(), servicers={"logs": RecordingLogs()}) as suite:
        r = await http.get(f"{suite.base}/debug/info", headers=suite.headers("admin"))
        assert r.status_code == 200, r.text
        body = r.json()
        services = body["services"]
        assert set(services) == {"gateway", "health", "metrics", "alerts", "logs", "export"}
        assert services["logs"]["service"] == "logs"
        assert services["gateway"]["pid"] == os.getpid()
        assert services["metrics"]["error"]["status"] == "UNAVAILABLE"
        overall = body["debug"]
        assert overall["goroutines"] == sum(s["debug"]["goroutines"] for s in services.values()
                                            if "debug" in s)
        assert overall["processes"] == 2 and overall["environment"] == "production"
        assert overall["settings"]["BOTMON_JWT_SECRET"] == "***"
        text = r.text
        for secret in (SECRET, "hunter2-smtp-password", *suite.tokens.values()):
            assert secret not in text
