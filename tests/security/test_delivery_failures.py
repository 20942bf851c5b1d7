"""Every way a delivery can fail ends in a record and a wait, never in a loop.

A notification that cannot be built is given up at once, recorded once. A notifier that
raises is a failed attempt like any other, retried with the configured backoff. An attempt
that cannot be recorded is held for the backoff before the row is tried again.

The API refuses every address the notifier could not send to, so the first two are driven
by the alerts service's own settings, as an operator could get them wrong (neither is checked
at start): a BOTMON_SMTP_FROM that is no address cannot be put in the From header, and a
BOTMON_SMTP_HOST with an empty label makes the resolver raise UnicodeError (not an OSError,
so aiosmtplib lets it through) on every attempt. No API input makes the history write fail, so
the third adds a trigger to the service's own SQLite file that refuses delivery entries: the
write fails inside the store, as a full disk or a constraint would, and nothing in the
service is patched.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from datetime import datetime

from botmon.runtime.store import StoreLocation
from tests.alerts.conftest import fast
from tests.waiting import eventually

RULE = {"name": "mem_high", "metric": "memory.usage_percent", "condition": "greater_than",
        "threshold": 50, "duration_seconds": 0}
RECIPIENT = "oncall@example.com"
#: Not an address: the From header cannot be made of it.
UNBUILDABLE_SENDER = "botmon@[example.com"
#: A double dot: ``socket.getaddrinfo`` raises UnicodeError before any lookup.
UNRESOLVABLE_HOST = "mail..example.com"


def _time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def _configure(http, suite, **notify) -> None:
    r = await http.post(f"{suite.base}/alerts/configure", json={**RULE, "notify": notify},
                        headers=suite.headers("operator"))
    assert r.status_code == 201, r.text


async def _deliveries(http, suite) -> list[dict]:
    """The recorded attempts to deliver the firing notice, oldest first (not ``/test``'s)."""
    r = await http.get(f"{suite.base}/alerts/history", params={"rule": RULE["name"]},
                       headers=suite.headers())
    assert r.status_code == 200, r.text
    return sorted((h["delivery"] for h in r.json()["history"]
                   if h["kind"] == "delivery" and h["delivery"]["kind"] == "firing"),
                  key=lambda d: _time(d["time"]))


async def _evaluations(suite, cycles: int) -> None:
    """Wait until the service has evaluated its rules ``cycles`` more times."""
    target = suite.metrics.calls + cycles
    await eventually(lambda: suite.metrics.calls >= target, within=30)


async def test_a_notification_that_cannot_be_built_is_given_up_at_once(alerts_suite, http,
                                                                     mailbox):
    async with alerts_suite(smtp_host="127.0.0.1", smtp_port=mailbox.port,
                            smtp_from=UNBUILDABLE_SENDER) as suite:
        await _configure(http, suite, email=[RECIPIENT])
        r = await http.post(f"{suite.base}/alerts/rules/{RULE['name']}/test",
                            headers=suite.headers("operator"))
        assert r.status_code == 200, r.text
        [tried] = r.json()["deliveries"]
        assert not tried["success"] and "cannot build the email notification" in tried["error"]
        assert repr(UNBUILDABLE_SENDER) in tried["error"], tried

        suite.metrics.values["memory.usage_percent"] = 80.0
        [delivery] = await eventually(lambda: _deliveries(http, suite))
        assert not delivery["success"] and delivery["attempt"] == 1, delivery
        assert "cannot build the email notification" in delivery["error"], delivery
        # A retry would have come within 0.55 s (the fast backoff, five attempts); ten cycles
        # of 0.2 s later there is still the one record.
        await _evaluations(suite, 10)
        assert await _deliveries(http, suite) == [delivery]
    assert mailbox.messages == []


async def test_a_notifier_that_raises_is_retried_with_the_backoff(alerts_suite, http):
    initial, attempts = 0.4, 4
    alerts = fast(notify_attempts=attempts, retry_initial=initial, retry_max=60.0)
    async with alerts_suite(alerts, smtp_host=UNRESOLVABLE_HOST) as suite:
        await _configure(http, suite, email=[RECIPIENT])
        r = await http.post(f"{suite.base}/alerts/rules/{RULE['name']}/test",
                            headers=suite.headers("operator"))
        assert r.status_code == 200, r.text
        [tried] = r.json()["deliveries"]
        assert not tried["success"] and tried["error"] == "unexpected error (UnicodeError)", tried

        suite.metrics.values["memory.usage_percent"] = 80.0
        deliveries = await eventually(lambda: _given_up(http, suite, attempts), within=30)
    assert [d["attempt"] for d in deliveries] == list(range(1, attempts + 1))
    assert all(d["error"] == "unexpected error (UnicodeError)" for d in deliveries), deliveries
    times = [_time(d["time"]) for d in deliveries]
    for attempt, (before, after) in enumerate(zip(times, times[1:], strict=False), start=1):
        # Equal jitter: never sooner than half the step of that attempt.
        assert after - before >= initial * 2 ** (attempt - 1) / 2, (attempt, times)


async def _given_up(http, suite, attempts: int) -> list[dict] | None:
    """The deliveries once the last attempt is recorded."""
    deliveries = await _deliveries(http, suite)
    return deliveries if deliveries and deliveries[-1]["attempt"] == attempts else None


async def _alter(database: str, sql: str) -> None:
    """Run ``sql`` on the service's database from a thread: the service shares this loop, and
    must go on to commit whatever transaction it holds while this connection waits its turn."""

    def run() -> None:
        with contextlib.closing(sqlite3.connect(database, timeout=30)) as conn:
            conn.execute(sql)

    await asyncio.to_thread(run)


async def test_an_attempt_that_cannot_be_recorded_waits_the_backoff(alerts_suite, http,
                                                                    receiver):
    backoff = 0.4
    # The row's attempt count is never stored, so every retry waits the same step: with
    # equal jitter, between half of it and all of it.
    alerts = fast(retry_initial=backoff, retry_max=backoff)
    async with alerts_suite(alerts) as suite:
        database = StoreLocation.parse(suite.settings.store_url).path
        await _configure(http, suite, webhook=receiver.url("/hook"))
        await _alter(database, "CREATE TRIGGER refuse_deliveries BEFORE INSERT ON alerts_history "
                               "WHEN NEW.kind = 'delivery' "
                               "BEGIN SELECT RAISE(ABORT, 'history cannot be written'); END")
        suite.metrics.values["memory.usage_percent"] = 80.0
        arrivals = await eventually(lambda: len(receiver.at("/hook")) >= 6
                                    and receiver.at("/hook"), within=30)
        assert await _deliveries(http, suite) == []
        times = [a.time for a in arrivals]
        window = times[-1] - times[0]
        assert len(times) <= window / (backoff / 2) + 1, times

        await _alter(database, "DROP TRIGGER refuse_deliveries")
        # The row was kept: once history can be written, the next try is recorded.
        [delivery] = await eventually(lambda: _deliveries(http, suite), within=30)
        assert delivery["success"] and delivery["attempt"] == 1, delivery
