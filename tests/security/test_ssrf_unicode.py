"""Unicode spellings of internal addresses cannot reach them, and failures leak no response body.

yarl (under aiohttp) normalises ``１２７.0.0.1``, ``127。0。0。1`` and ``⑫⑦.0.0.1``
to the literal ``127.0.0.1``, which never reaches the resolver's policy. Each
is tried against a real listener on loopback: refused at ``POST
/alerts/configure`` with a 400 naming the field, and — for a URL that got into
the store or the settings another way — refused again at delivery, before any
connection. The cloud metadata address is tried the same way. Nothing leaves
the machine.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys

import pytest

from botmon.runtime.store import write_transaction
from services.alerts.destinations import DestinationPolicy
from tests.alerts.conftest import fast

UNICODE_LOOPBACK = ("１２７.0.0.1", "127。0。0。1", "⑫⑦.0.0.1")
METADATA = ("１６９.２５４.１６９.２５４", "169。254。169。254")


def rule(name: str, **notify) -> dict:
    return {"name": name, "metric": "memory.usage_percent", "condition": "greater_than",
            "threshold": 99.9, "duration_seconds": 60, "notify": notify}


@pytest.mark.parametrize("channel", ["webhook", "slack", "teams"])
async def test_unicode_hosts_are_refused_at_configure(alerts_suite, http, receiver, channel):
    async with alerts_suite(fast(webhook_allow=DestinationPolicy())) as suite:
        for host in (*UNICODE_LOOPBACK, *METADATA):
            url = f"http://{host}:{receiver.port}/x"
            r = await http.post(f"{suite.base}/alerts/configure",
                                json=rule("unicode_probe", **{channel: url}),
                                headers=suite.headers("operator"))
            assert r.status_code == 400, (host, r.status_code, r.text[:300])
            assert f"notify.{channel}" in r.json()["error"]["message"], host
        rules = (await http.get(f"{suite.base}/alerts/rules", headers=suite.headers())).json()
        assert "unicode_probe" not in [x["name"] for x in rules["rules"]]
    assert receiver.requests == []


async def test_unicode_hosts_are_refused_even_where_loopback_is_allowed(alerts_suite, http,
                                                                        receiver):
    """Allowing 127.0.0.0/8 allows the ASCII literal, never a spelling yarl rewrites."""
    async with alerts_suite(fast(webhook_allow=DestinationPolicy.parse("127.0.0.0/8"))) as suite:
        for host in UNICODE_LOOPBACK:
            r = await http.post(f"{suite.base}/alerts/configure",
                                json=rule("unicode_probe", webhook=f"http://{host}:"
                                                                   f"{receiver.port}/x"),
                                headers=suite.headers("operator"))
            assert r.status_code == 400, (host, r.text[:300])
            assert "ASCII" in r.json()["error"]["message"]
    assert receiver.requests == []


async def test_a_stored_unicode_webhook_is_refused_at_delivery(alerts_suite, http, receiver,
                                                               tmp_path):
    """A rule stored before the check existed is judged again when it is sent."""
    async with alerts_suite(fast(webhook_allow=DestinationPolicy())) as suite:
        r = await http.post(f"{suite.base}/alerts/configure",
                            json=rule("stored_probe", webhook="https://93.184.215.14/hook"),
                            headers=suite.headers("operator"))
        assert r.status_code == 201, r.text
        # The service writes meanwhile (evaluation, the audit outbox) from this event loop:
        # the test's own writes run on a thread, so the loop goes on and the service's
        # transactions end while the test waits for the lock (BEGIN IMMEDIATE waits for it,
        # where a deferred transaction may read a snapshot the service's writes make stale).
        db = sqlite3.connect(tmp_path / "botmon.db", timeout=30, isolation_level=None,
                             check_same_thread=False)
        [(spec,)] = await asyncio.to_thread(lambda: db.execute(
            "SELECT spec FROM alerts_rules WHERE name = 'stored_probe'").fetchall())

        def store(host: str) -> None:
            with write_transaction(db):
                db.execute("UPDATE alerts_rules SET spec = ? WHERE name = 'stored_probe'",
                           (spec.replace("https://93.184.215.14/hook",
                                         f"http://{host}:{receiver.port}/x"),))

        for host in UNICODE_LOOPBACK:
            await asyncio.to_thread(store, host)
            r = await http.post(f"{suite.base}/alerts/rules/stored_probe/test",
                                headers=suite.headers("operator"))
            assert r.status_code == 200, r.text
            [delivery] = r.json()["deliveries"]
            assert not delivery["success"] and "ASCII" in delivery["error"], (host, delivery)
        db.close()
    assert receiver.requests == []


async def test_gateway_urls_from_settings_are_judged_the_same_way(alerts_suite, http, receiver):
    """PagerDuty's and the SMS gateway's URLs pass through the same check before each send."""
    pagerduty = f"http://１２７.0.0.1:{receiver.port}/pagerduty"
    sms = f"http://169.254.169.254:{receiver.port}/sms"
    async with alerts_suite(fast(webhook_allow=DestinationPolicy()), pagerduty_url=pagerduty,
                            sms_gateway_url=sms) as suite:
        r = await http.post(f"{suite.base}/alerts/configure",
                            json=rule("gateway_probe", pagerduty="R0UTINGKEY",
                                      sms=["+15551234567"]),
                            headers=suite.headers("operator"))
        assert r.status_code == 201, r.text
        r = await http.post(f"{suite.base}/alerts/rules/gateway_probe/test",
                            headers=suite.headers("operator"))
        assert r.status_code == 200, r.text
        deliveries = {d["channel"]: d for d in r.json()["deliveries"]}
        assert not deliveries["pagerduty"]["success"]
        assert "ASCII" in deliveries["pagerduty"]["error"]
        assert not deliveries["sms"]["success"]
        assert "internal address" in deliveries["sms"]["error"]
    assert receiver.requests == []


async def test_a_failed_delivery_records_the_status_code_only(alerts_suite, http, receiver):
    """An internal service's error page must not come back to viewers through history."""
    receiver.fail("/hook", 500)  # answered with the body "receiver error"
    async with alerts_suite(fast(webhook_allow=DestinationPolicy.parse("127.0.0.0/8"))) as suite:
        r = await http.post(f"{suite.base}/alerts/configure",
                            json=rule("leak_probe", webhook=receiver.url("/hook")),
                            headers=suite.headers("operator"))
        assert r.status_code == 201, r.text
        r = await http.post(f"{suite.base}/alerts/rules/leak_probe/test",
                            headers=suite.headers("operator"))
        [delivery] = r.json()["deliveries"]
        assert delivery["status_code"] == 500 and delivery["error"] == "HTTP 500", delivery
        history = await http.get(f"{suite.base}/alerts/history", params={"rule": "leak_probe"},
                                 headers=suite.headers("viewer"))
        assert history.status_code == 200
        assert "receiver error" not in history.text and "HTTP 500" in history.text
    assert len(receiver.at("/hook")) == 1


@pytest.mark.parametrize("variable", ["BOTMON_SMS_GATEWAY_URL", "BOTMON_PROBE_LLM_URL"])
def test_a_unicode_host_in_the_settings_stops_start(tmp_path, variable):
    """Every URL setting the suite fetches goes through the same check, at start."""
    env = {**os.environ, "BOTMON_DATA_DIR": str(tmp_path), variable: "http://１２７.0.0.1:9/x"}
    result = subprocess.run([sys.executable, "-m", "botmon.cli", "config"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout[-500:]
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(f"botmon: {variable}: ") and "ASCII" in result.stderr
