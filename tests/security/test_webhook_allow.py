"""A rule cannot make the suite call internal addresses unless ``BOTMON_WEBHOOK_ALLOW`` allows it.

Through ``POST /alerts/configure``: a webhook (and Slack/Teams incoming-webhook)
URL whose host is loopback, link-local (cloud metadata), private, unspecified
or otherwise not globally routable is a 400 naming the variable; an address
that the allow list covers is accepted; public addresses are accepted as
before. The list takes CIDRs (comma separated), among other forms
(services/alerts/destinations.py).
"""

from __future__ import annotations

import pytest

from services.alerts.config import AlertsSettings
from tests.harness import Suite

VARIABLE = "BOTMON_WEBHOOK_ALLOW"

INTERNAL = [
    "http://127.0.0.1:9/hook",
    "http://127.1.2.3/hook",
    "http://localhost:8080/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://10.0.0.5/hook",
    "http://172.16.0.1/hook",
    "http://192.168.1.10/hook",
    "http://0.0.0.0:8080/hook",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://100.64.0.1/hook",
]
#: 127.0.0.1 and 169.254.169.254 in the other spellings getaddrinfo() accepts.
NUMERIC = [
    "https://2130706433/hook",
    "http://0x7f000001/hook",
    "http://127.1/hook",
    "http://0177.0.0.1/hook",
    "http://0xa9.254.169.254/latest/meta-data/",
]
PUBLIC = "https://93.184.215.14/hook"


def rule(channel: str, url: str) -> dict:
    return {"name": "ssrf_probe", "metric": "memory.usage_percent", "condition": "greater_than",
            "threshold": 99.9, "duration_seconds": 60, "severity": "warning",
            "notify": {channel: url}}


@pytest.fixture
async def suite(make_settings, request):
    allow = getattr(request, "param", None)
    alerts = AlertsSettings.from_env({VARIABLE: allow} if allow else {})
    # The metrics service too: configuring a rule checks its metric there.
    async with Suite(make_settings(alert_eval_interval=3600.0), components=("metrics", "alerts"),
                     options={"alerts": {"alerts_settings": alerts}}) as suite:
        yield suite


@pytest.mark.parametrize("channel", ["webhook", "slack", "teams"])
async def test_internal_addresses_are_refused_by_default(suite, http, channel):
    for url in INTERNAL:
        r = await http.post(f"{suite.base}/alerts/configure", json=rule(channel, url),
                            headers=suite.headers("operator"))
        assert r.status_code == 400, (url, r.status_code, r.text[:200])
        assert VARIABLE in r.json()["error"]["message"], url
    r = await http.get(f"{suite.base}/alerts/rules", headers=suite.headers())
    assert "ssrf_probe" not in [x["name"] for x in r.json()["rules"]]


@pytest.mark.parametrize("url", NUMERIC)
async def test_numeric_spellings_of_internal_addresses_are_refused(suite, http, url):
    r = await http.post(f"{suite.base}/alerts/configure", json=rule("webhook", url),
                        headers=suite.headers("operator"))
    assert r.status_code == 400, (url, r.status_code, r.text[:200])


async def test_public_addresses_are_accepted(suite, http):
    r = await http.post(f"{suite.base}/alerts/configure", json=rule("webhook", PUBLIC),
                        headers=suite.headers("operator"))
    assert r.status_code in (200, 201), r.text[:200]


@pytest.mark.parametrize("suite", ["127.0.0.0/8,10.0.0.0/8"], indirect=True)
async def test_allow_list_opens_exactly_what_it_names(suite, http):
    for url, want in (("http://127.0.0.1:9/hook", (200, 201)), ("http://10.0.0.5/hook", (200, 201)),
                      ("http://169.254.169.254/latest/meta-data/", (400,)),
                      ("http://192.168.1.10/hook", (400,))):
        r = await http.post(f"{suite.base}/alerts/configure", json=rule("webhook", url),
                            headers=suite.headers("operator"))
        assert r.status_code in want, (url, r.status_code, r.text[:200])
