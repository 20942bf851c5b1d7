"""``botmon healthcheck http://…``: exit 0 when the URL answers 2xx, as the gateway's container checks."""

from __future__ import annotations

import signal
import urllib.request

LIVE = "/api/v1/monitoring/health/live"
READY = "/api/v1/monitoring/health/ready"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def test_healthcheck_of_the_gateway_over_http(botmon, suite_env):
    # The gateway alone: live (no dependency checks) answers 200, ready (backends down) 503.
    base = f"http://{suite_env['BOTMON_HTTP_ADDR']}"
    gateway = botmon("serve", "gateway", env=suite_env)
    gateway.wait_for(lambda: _answers(base + LIVE), "the gateway's live route", 60)

    live = botmon("healthcheck", base + LIVE, env=suite_env)
    assert live.proc.wait(30) == 0, live.output()
    assert live.stdout.strip() == f"{base + LIVE}: HTTP 200"
    ready = botmon("healthcheck", base + READY, "--timeout", "5", env=suite_env)
    assert ready.proc.wait(30) == 1, ready.output()
    assert ready.stdout.strip() == f"{base + READY}: HTTP 503"

    gateway.proc.send_signal(signal.SIGTERM)
    assert gateway.proc.wait(30) == 0, gateway.output()
