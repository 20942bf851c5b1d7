"""No secret in the gateway's log, in ``/debug/info`` or in any other answer.

Secrets: API tokens, the JWT secret, the SMTP password, and the passwords in
the store and Redis URLs. The gateway runs as its own process (``python -m
gateway``) at debug level so that everything it logs on start, on requests
(good, bad and refused credentials, a token in the query string) and on
shutdown is captured; a whole in-process suite then answers ``/debug/info`` and
the routes that describe the store without them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from urllib.parse import urlsplit, urlunsplit

import httpx
import jwt
import pytest

from botmon.runtime.config import ApiToken
from services.export.sinks import newrelic, otlp
from tests.conftest import free_port
from tests.export.conftest import export_options
from tests.harness import COMPONENTS, Suite

TOKEN = "admin-token-that-must-never-be-logged-4f1c"
VIEWER = "viewer-token-that-must-never-be-logged-9a2e"
JWT_SECRET = "jwt-secret-that-must-never-be-logged-" + "7d3b" * 8
SMTP_PASSWORD = "smtp-password-never-logged-51e0"
STORE_PASSWORD = "store-password-never-logged-c8a9"
REDIS_PASSWORD = "redis-password-never-logged-0b7f"
OTLP_KEY = "otlp-header-key-never-logged-6d2c"
NEWRELIC_KEY = "newrelic-licence-never-logged-3e8a"
SECRETS = (TOKEN, VIEWER, JWT_SECRET, SMTP_PASSWORD, STORE_PASSWORD, REDIS_PASSWORD, OTLP_KEY,
           NEWRELIC_KEY)
#: Export destinations with keys (their sends fail: nothing listens on port 9).
SINKS = {"otlp": otlp.Settings(endpoint="http://127.0.0.1:9",
                               headers=(("x-honeycomb-team", OTLP_KEY),)),
         "newrelic": newrelic.Settings(license_key=NEWRELIC_KEY, endpoint="http://127.0.0.1:9")}


def _with_password(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = f"{user}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _wait_live(base: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"{base}/health/live", timeout=1)
            return
        except httpx.TransportError:
            assert proc.poll() is None, "gateway exited"
            assert time.monotonic() < deadline, "gateway did not start"
            time.sleep(0.1)


def test_gateway_process_logs_no_secret(tmp_path, redis_server_url):
    port = free_port()
    env = {
        **os.environ,
        "BOTMON_HTTP_ADDR": f"127.0.0.1:{port}",
        "BOTMON_DATA_DIR": str(tmp_path),
        "BOTMON_LOG_LEVEL": "debug",
        "BOTMON_API_TOKENS": f"{TOKEN}:admin:root,{VIEWER}:viewer:eve",
        "BOTMON_JWT_SECRET": JWT_SECRET,
        "BOTMON_SMTP_HOST": "127.0.0.1",
        "BOTMON_SMTP_USER": "botmon",
        "BOTMON_SMTP_PASSWORD": SMTP_PASSWORD,
        "BOTMON_STORE_URL": f"postgresql://botmon:{STORE_PASSWORD}@127.0.0.1:{free_port()}/x",
        # A real Redis that refuses these credentials: the limiter fails open and says so.
        "BOTMON_REDIS_URL": _with_password(f"{redis_server_url}/9", "botmon", REDIS_PASSWORD),
        "BOTMON_HEALTH_TARGET": f"127.0.0.1:{free_port()}",
    }
    proc = subprocess.Popen([sys.executable, "-m", "gateway"], cwd=os.getcwd(), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}/api/v1/monitoring"
    admin = {"Authorization": f"Bearer {TOKEN}"}
    hs256 = jwt.encode({"sub": "jay", "role": "viewer", "exp": int(time.time()) + 60},
                       JWT_SECRET, algorithm="HS256")
    try:
        _wait_live(base, proc)
        with httpx.Client(timeout=10) as http:
            bodies = [
                http.get(f"{base}/debug/info", headers=admin),
                http.get(f"{base}/alerts/rules", headers=admin),
                http.get(f"{base}/status", headers={"Authorization": f"Bearer {hs256}"}),
                http.get(f"{base}/logs", headers={"Authorization": f"Bearer {TOKEN}x"}),
                http.get(f"{base}/logs", headers={"Authorization": f"Bearer {JWT_SECRET}"}),
                http.get(f"{base}/docs", params={"access_token": VIEWER}),
                http.get(f"{base}/no/such/route", headers=admin),
                http.post(f"{base}/logs", headers=admin, content=b"x" * (2 * 1024 * 1024)),
                http.get(f"{base}/health/detailed", headers=admin),
            ]
        debug = bodies[0]
        assert debug.status_code == 200, debug.text
        assert debug.json()["debug"]["settings"]["BOTMON_SMTP_PASSWORD"] == "***"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-2000:]
    # The log did see the requests and the refused Redis credentials.
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any(line["message"] == "request" and line.get("path") == "/api/v1/monitoring/docs"
               for line in lines), err[-2000:]
    assert "rate limiter cannot use Redis" in err
    for secret in SECRETS:
        assert secret not in out, f"stdout shows {secret[:12]}…"
        assert secret not in err, f"the log shows {secret[:12]}…"
        for response in bodies:
            assert secret not in response.text, f"{response.url.path} shows {secret[:12]}…"


@pytest.fixture
async def suite(make_settings, postgres_url):
    # PostgreSQL here trusts local connections, so the password is carried but not needed.
    settings = make_settings(store_url=_with_password(postgres_url, "postgres", STORE_PASSWORD),
                             jwt_secret=JWT_SECRET, smtp_host="127.0.0.1",
                             smtp_password=SMTP_PASSWORD,
                             api_tokens=(ApiToken(TOKEN, "admin", "root"),))
    async with Suite(settings, components=(*COMPONENTS, "export"),
                     options=export_options(SINKS)) as suite:
        yield suite


async def test_no_service_shows_a_secret(suite, http):
    admin = {"Authorization": f"Bearer {TOKEN}"}
    paths = ("/debug/info", "/status", "/health/detailed", "/resources/database",
             "/metrics/application", "/alerts/rules", "/openapi.json")
    for path in paths:
        r = await http.get(f"{suite.base}{path}", headers=admin)
        assert r.status_code < 500, (path, r.text)
        for secret in SECRETS:
            assert secret not in r.text, f"{path} shows {secret[:12]}…"
    services = (await http.get(f"{suite.base}/debug/info", headers=admin)).json()["services"]
    assert set(services) == {"gateway", "health", "metrics", "alerts", "logs", "export"}
    assert services["export"]["debug"]["settings"]["OTEL_EXPORTER_OTLP_HEADERS"] == "***"
    assert services["export"]["debug"]["settings"]["BOTMON_NEWRELIC_LICENSE_KEY"] == "***"
    for name, info in services.items():
        config = info["debug"]["settings"]
        assert config["BOTMON_STORE_URL"] == "***", name
        assert config["BOTMON_SMTP_PASSWORD"] == "***", name
        assert config["BOTMON_JWT_SECRET"] == "***", name
