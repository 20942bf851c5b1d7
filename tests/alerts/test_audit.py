"""Every change is audited: entries of service botmon.audit in GET /logs, written with the change."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from tests.alerts.conftest import fast
from tests.alerts.stand_ins import MetricsStandIn, free_port
from tests.harness import Suite
from tests.waiting import eventually

SLACK = "https://hooks.slack.com/services/T000/B000/very-secret-slack-path"
RULE = {
    "name": "memory_audited", "metric": "memory.usage_percent", "condition": "greater_than",
    "threshold": 90, "duration_seconds": 0, "severity": "warning",
    "notify": {"webhook": f"http://127.0.0.1:{free_port()}/alerts", "slack": SLACK},
    "secret": "hmac-secret-of-the-rule",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request) -> dict:
    if request.param == "postgresql":
        return {"store_url": request.getfixturevalue("postgres_url")}
    return {}


@pytest.fixture
async def suite(store, make_settings):
    metrics = MetricsStandIn({"memory.usage_percent": 40.0, "disk.free_percent": 50.0})
    settings = make_settings(alert_eval_interval=0.2, grpc_deadline=2.0, heartbeat_interval=60.0,
                             health_target=f"127.0.0.1:{free_port()}", **store)
    async with Suite(settings, components=("alerts", "logs"), servicers={"metrics": metrics},
                     options={"alerts": {"alerts_settings": fast()}}) as s:
        s.metrics = metrics
        async with httpx.AsyncClient(timeout=10) as http:
            s.http = http
            yield s


def _rid() -> str:
    return os.urandom(16).hex()


async def _audit(suite, count: int) -> list[dict]:
    """The audit entries, oldest first, once there are ``count`` of them."""
    async def entries():
        r = await suite.http.get(f"{suite.base}/logs?service=botmon.audit&order=asc&limit=100",
                                 headers=suite.headers("admin"))
        logs = r.json()["logs"]
        return logs if len(logs) >= count else None
    return await eventually(entries)


async def test_each_kind_of_change_is_audited_with_who_and_what(suite):
    http, op = suite.http, suite.headers("operator")
    rids = []

    async def call(method, path, role="operator", **kwargs):
        rid = _rid()
        rids.append(rid)
        r = await http.request(method, f"{suite.base}{path}",
                               headers={**suite.headers(role), "X-Request-ID": rid}, **kwargs)
        assert r.status_code < 300, r.text
        return r.json()

    await call("POST", "/alerts/configure", json=RULE)
    await call("POST", "/alerts/configure", role="admin", json={**RULE, "threshold": 92})
    suite.metrics.values["memory.usage_percent"] = 95

    async def firing():
        alerts = (await http.get(f"{suite.base}/alerts?state=firing", headers=op)).json()["alerts"]
        return alerts[0] if alerts else None
    alert = await eventually(firing)
    await call("POST", f"/alerts/{alert['alert_id']}/acknowledge", json={"notes": "on it"})
    ends = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    silence = (await call("POST", "/alerts/silences", json={
        "matchers": [{"name": "alertname", "value": "memory_audited"}], "ends_at": ends,
        "comment": "maintenance"}))["silence"]
    await call("DELETE", f"/alerts/silences/{silence['silence_id']}")
    await call("DELETE", "/alerts/rules/memory_audited")

    entries = await _audit(suite, 6)
    summary = [(e["metadata"]["action"], e["metadata"]["resource"], e["metadata"]["subject"],
                e["metadata"]["role"]) for e in entries]
    assert summary == [
        ("rule.created", "rules/memory_audited", "test-operator", "operator"),
        ("rule.replaced", "rules/memory_audited", "test-admin", "admin"),
        ("alert.acknowledged", f"alerts/{alert['alert_id']}", "test-operator", "operator"),
        ("silence.created", f"silences/{silence['silence_id']}", "test-operator", "operator"),
        ("silence.expired", f"silences/{silence['silence_id']}", "test-operator", "operator"),
        ("rule.deleted", "rules/memory_audited", "test-operator", "operator"),
    ]
    assert [e["metadata"]["request_id"] for e in entries] == rids
    for entry in entries:
        assert entry["level"] == "info" and entry["service"] == "botmon.audit"
        assert entry["timestamp"].endswith("Z")
    created, replaced, acked = (e["metadata"]["changes"] for e in entries[:3])
    assert created["threshold"] == [None, 90]
    assert created["has_secret"] == [False, True]
    assert replaced == {"threshold": [90, 92]}
    assert acked == {"rule": "memory_audited", "acknowledged_by": "test-operator",
                     "notes": "on it"}
    # Credentials never reach the audit trail, masked or not.
    text = json.dumps(entries)
    assert "very-secret-slack-path" not in text and "hmac-secret-of-the-rule" not in text
    assert created["notify"]["slack"] == [None, "***"]


async def test_a_change_that_fails_leaves_no_audit_entry(suite):
    http, op = suite.http, suite.headers("operator")
    assert (await http.delete(f"{suite.base}/alerts/rules/no_such_rule", headers=op)).status_code == 404
    assert (await http.post(f"{suite.base}/alerts/alt_0000000000000000/acknowledge",
                            json={"notes": "x"}, headers=op)).status_code == 404
    assert (await http.delete(f"{suite.base}/alerts/silences/sil_0000000000000000",
                              headers=op)).status_code == 404
    # A later change is audited, and it is the only entry: the failed ones left nothing.
    assert (await http.post(f"{suite.base}/alerts/configure", json=RULE,
                            headers=op)).status_code == 201
    entries = await _audit(suite, 1)
    assert [e["metadata"]["action"] for e in entries] == ["rule.created"]


#: A fault in the database itself: the version bump, every change's last statement and so
#: after its audit record, fails while a rule named ``doomed_rule`` is being written.
FAULT = {
    "sqlite": ["CREATE TRIGGER doom BEFORE UPDATE ON alerts_version WHEN EXISTS (SELECT 1 "
               "FROM alerts_rules WHERE name = 'doomed_rule') BEGIN "
               "SELECT RAISE(ABORT, 'injected fault'); END"],
    "postgresql": ["CREATE FUNCTION doom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                   "IF EXISTS (SELECT 1 FROM alerts_rules WHERE name = 'doomed_rule') THEN "
                   "RAISE EXCEPTION 'injected fault'; END IF; RETURN NEW; END $$",
                   "CREATE TRIGGER doom BEFORE UPDATE ON alerts_version FOR EACH ROW "
                   "EXECUTE FUNCTION doom()"],
}


def _sqlite(path: str, statement: str) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(path, timeout=30, isolation_level=None)) as db:
        # IMMEDIATE: waits for the service's writes, where a deferred transaction that
        # turns into a write fails at once with "database is locked".
        db.execute("BEGIN IMMEDIATE")
        rows = db.execute(statement).fetchall()
        db.execute("COMMIT")
        return rows


async def _sql(url: str, statement: str) -> list[tuple]:
    """Run one statement on the suite's store, as its operator would, and return the rows."""
    if url.startswith("sqlite"):
        # In a thread: the service, on this loop, must be free to finish what holds the lock.
        return await asyncio.to_thread(_sqlite, url.removeprefix("sqlite:///"), statement)
    conn = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch(statement)]
    finally:
        await conn.close()


async def test_a_change_whose_transaction_fails_after_its_record_leaves_neither(suite):
    http, op, url = suite.http, suite.headers("operator"), suite.settings.store_url
    for statement in FAULT["sqlite" if url.startswith("sqlite") else "postgresql"]:
        await _sql(url, statement)
    r = await http.post(f"{suite.base}/alerts/configure", json={**RULE, "name": "doomed_rule"},
                        headers=op)
    assert r.status_code >= 500, r.text
    # The audit record was inserted before the fault; it went with the rolled-back change.
    rules = (await http.get(f"{suite.base}/alerts/rules", headers=op)).json()["rules"]
    assert "doomed_rule" not in [rule["name"] for rule in rules]
    assert await _sql(url, "SELECT count(*) FROM alerts_audit") == [(0,)]
    # The next change is audited, and its entry is the only one: none of the failed change
    # reached the logs either (the relay sends records in the order they were written).
    assert (await http.post(f"{suite.base}/alerts/configure", json=RULE,
                            headers=op)).status_code == 201
    entries = await _audit(suite, 1)
    assert [(e["metadata"]["action"], e["metadata"]["resource"]) for e in entries] == [
        ("rule.created", "rules/memory_audited")]


async def test_records_wait_for_the_logs_service_and_are_then_relayed(suite):
    await suite.stop("logs")
    assert (await suite.http.post(f"{suite.base}/alerts/configure", json=RULE,
                                  headers=suite.headers("operator"))).status_code == 201
    await suite.start("logs")
    entries = await _audit(suite, 1)
    assert [e["metadata"]["action"] for e in entries] == ["rule.created"]
