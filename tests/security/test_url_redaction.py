"""URLs are shown without credentials: health reasons, logs and ``/debug/info``.

The LLM probe's URL carries a user, a password and an ``api_key`` parameter; a
real loopback server answers its ``GET /v1/models`` with 500, so the probe's
reason names the URL. A viewer's ``/health/detailed``, the health process's
own log (run as its own process, at debug level) and an admin's
``/debug/info`` (``BOTMON_SMS_GATEWAY_URL`` too) show neither. ``/debug/info``
also has ``debug.config`` as the API document shows it.
"""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading

import pytest

from tests.conftest import free_port
from tests.harness import Suite
from tests.waiting import eventually, wait_until

PASSWORD = "llm-password-never-shown-3f9a"
API_KEY = "llm-api-key-never-shown-77c1"
SMS_PASSWORD = "sms-password-never-shown-0d2e"
SMS_KEY = "sms-key-never-shown-b6a4"
SECRETS = (PASSWORD, API_KEY, SMS_PASSWORD, SMS_KEY)


class _Failing(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (the handler's protocol names it)
        self.server.paths.append(self.path)
        self.send_response(500)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def llm_server():
    """A real HTTP server on loopback answering every GET with 500."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    server.paths = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _llm_url(server) -> str:
    return (f"http://llmuser:{PASSWORD}@127.0.0.1:{server.server_address[1]}/"
            f"?api_key={API_KEY}")


SMS_URL = f"http://smsuser:{SMS_PASSWORD}@127.0.0.1:9/send?key={SMS_KEY}&from=botmon"


async def test_health_reason_and_debug_info_show_no_credentials(make_settings, http,
                                                                llm_server):
    settings = make_settings(probe_llm_url=_llm_url(llm_server), sms_gateway_url=SMS_URL,
                             probe_interval=0.5)
    async with Suite(settings, components=("health",)) as suite:
        async def llm_reason():
            r = await http.get(f"{suite.base}/health/detailed", headers=suite.headers("viewer"))
            llm = r.json()["components"]["llm"]
            return r if "HTTP 500" in llm.get("reason", "") else None
        detailed = await eventually(llm_reason)
        debug = await http.get(f"{suite.base}/debug/info", headers=suite.headers("admin"))
    assert llm_server.paths, "the probe never reached the server"
    reason = detailed.json()["components"]["llm"]["reason"]
    assert "***@127.0.0.1" in reason, reason
    assert debug.status_code == 200, debug.text
    info = debug.json()
    settings_shown = info["debug"]["settings"]
    assert settings_shown["BOTMON_SMS_GATEWAY_URL"] == \
        "http://***@127.0.0.1:9/send?key=***&from=***"
    assert settings_shown["BOTMON_PROBE_LLM_URL"].startswith("http://***@127.0.0.1:")
    assert info["services"]["health"]["debug"]["settings"]["BOTMON_SMS_GATEWAY_URL"] == \
        settings_shown["BOTMON_SMS_GATEWAY_URL"]
    for secret in SECRETS:
        assert secret not in detailed.text and secret not in debug.text, secret[:12]


async def test_debug_config_is_shaped_as_the_api_document(make_settings, http):
    for level, debug_mode in (("info", False), ("debug", True)):
        async with Suite(make_settings(log_level=level), components=("health",)) as suite:
            r = await http.get(f"{suite.base}/debug/info", headers=suite.headers("admin"))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["debug"]["config"] == {"debug_mode": debug_mode, "log_level": level}
        assert body["services"]["health"]["debug"]["config"] == \
            {"debug_mode": debug_mode, "log_level": level}
        assert body["debug"]["settings"]["BOTMON_LOG_LEVEL"] == level


def test_health_process_log_shows_no_credentials(tmp_path, llm_server):
    env = {**os.environ, "BOTMON_HEALTH_ADDR": f"127.0.0.1:{free_port()}",
           "BOTMON_DATA_DIR": str(tmp_path), "BOTMON_LOG_LEVEL": "debug",
           "BOTMON_PROBE_INTERVAL": "0.5", "BOTMON_PROBE_LLM_URL": _llm_url(llm_server),
           "BOTMON_SMS_GATEWAY_URL": SMS_URL}
    proc = subprocess.Popen([sys.executable, "-m", "services.health"], cwd=os.getcwd(), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: len(llm_server.paths) >= 2 or proc.poll() is not None,
                   "two probes of the LLM server", timeout=30)
        assert proc.poll() is None, "the health service exited"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "HTTP 500" in err and "***@127.0.0.1" in err, err[-2000:]
    for secret in SECRETS:
        assert secret not in out and secret not in err, secret[:12]
