"""Rule secrets, Slack/Teams URLs and PagerDuty routing keys are encrypted at rest.

Configured through REST, with an alert firing so that every table that copies
a rule (the rule, its alert, the outbox) holds them: the bytes are in no file
of the data dir (SQLite's WAL included) and in no row of any PostgreSQL table;
the API shows ``has_secret`` and masked targets. Secrets written in plaintext
before encryption existed are sealed on the next start. Webhook signatures
still verify after a key rotation and a restart; a key that opens nothing
stops the alerts process with one line naming ``BOTMON_SECRET_KEY``; without
the variable a key is made in the data dir, mode 0600, and its path printed.
Failed deliveries to every kind of target log no secret either.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import asyncpg
from cryptography.fernet import Fernet

from botmon.runtime.logging import JsonFormatter
from tests.alerts.conftest import fast
from tests.alerts.stand_ins import Receiver
from tests.conftest import free_port, grpc_serving
from tests.waiting import eventually, wait_until

SECRET = "hmac-secret-at-rest-5b1e9c"
SLACK_TOKEN = "SlackTokenAtRest7f3d"
TEAMS_TOKEN = "TeamsTokenAtRest2c8a"
ROUTING_KEY = "RoutingKeyAtRest91ab"
SECRETS = (SECRET, SLACK_TOKEN, TEAMS_TOKEN, ROUTING_KEY)


def _rule(receiver: Receiver) -> dict:
    return {"name": "sealed_rule", "metric": "memory.usage_percent", "condition": "greater_than",
            "threshold": 50, "duration_seconds": 0, "secret": SECRET,
            "notify": {"webhook": receiver.url("/hook"),
                       "slack": receiver.url(f"/slack/{SLACK_TOKEN}"),
                       "teams": receiver.url(f"/teams/{TEAMS_TOKEN}"),
                       "pagerduty": ROUTING_KEY}}


def _suite(alerts_suite, receiver: Receiver, *keys: str, **overrides):
    """The suite with ``BOTMON_SECRET_KEY`` set to ``keys`` and PagerDuty on the receiver."""
    return alerts_suite(secret_key=keys, pagerduty_url=receiver.url("/pagerduty"), **overrides)


def _files_holding_secrets(directory: Path) -> list[str]:
    found = []
    for path in directory.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path.name}: {s[:10]}…" for s in SECRETS if s.encode() in data]
    return found


def _signed_correctly(request) -> bool:
    expected = "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    return request.headers.get("X-Botmon-Signature") == expected


async def _configure_and_fire(suite, http, receiver) -> None:
    r = await http.post(f"{suite.base}/alerts/configure", json=_rule(receiver),
                        headers=suite.headers("operator"))
    assert r.status_code == 201, r.text
    suite.metrics.values["memory.usage_percent"] = 80.0
    await eventually(lambda: receiver.at("/hook") and receiver.at(f"/slack/{SLACK_TOKEN}")
                     and receiver.at("/pagerduty"))


async def _api_shows_no_secret(suite, http, receiver) -> None:
    r = await http.get(f"{suite.base}/alerts/rules", headers=suite.headers())
    [rule] = r.json()["rules"]
    assert rule["has_secret"] is True and not rule.get("secret")
    assert rule["notify"]["slack"] == f"http://127.0.0.1:{receiver.port}/…/{SLACK_TOKEN[-4:]}"
    assert rule["notify"]["pagerduty"] == f"…{ROUTING_KEY[-4:]}"
    texts = [r.text]
    for path in ("/alerts", "/alerts/history", "/debug/info"):
        texts.append((await http.get(f"{suite.base}{path}", headers=suite.headers("admin"))).text)
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


async def test_sqlite_files_hold_no_secret(alerts_suite, http, receiver, tmp_path):
    # Slack fails once and its retry waits, so the outbox holds a row while the files are read.
    receiver.fail(f"/slack/{SLACK_TOKEN}", 500)
    key = Fernet.generate_key().decode()
    async with _suite(alerts_suite, receiver, key,
                      alerts=fast(retry_initial=60.0, retry_max=60.0)) as suite:
        debug = await http.get(f"{suite.base}/debug/info", headers=suite.headers("admin"))
        assert debug.json()["debug"]["settings"]["BOTMON_SECRET_KEY"] == "***"
        assert key not in debug.text
        await _configure_and_fire(suite, http, receiver)
        assert _signed_correctly(receiver.at("/hook")[0])
        await _api_shows_no_secret(suite, http, receiver)
        with sqlite3.connect(tmp_path / "botmon.db") as db:
            assert db.execute("SELECT COUNT(*) FROM alerts_outbox").fetchone()[0] == 1
        db.close()
        assert (tmp_path / "botmon.db-wal").stat().st_size > 0
        assert _files_holding_secrets(tmp_path) == []
    assert _files_holding_secrets(tmp_path) == []


async def test_postgresql_tables_hold_no_secret(alerts_suite, http, receiver, postgres_url):
    # Slack fails once and its retry waits, so the outbox holds a row while the tables are read.
    receiver.fail(f"/slack/{SLACK_TOKEN}", 500)
    async with _suite(alerts_suite, receiver, Fernet.generate_key().decode(),
                      store_url=postgres_url,
                      alerts=fast(retry_initial=60.0, retry_max=60.0)) as suite:
        await _configure_and_fire(suite, http, receiver)
        await _api_shows_no_secret(suite, http, receiver)
        conn = await asyncpg.connect(postgres_url, timeout=10)
        try:
            tables = [r["tablename"] for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
            rows = {t: await conn.fetch(f'SELECT * FROM "{t}"') for t in tables}
        finally:
            await conn.close()
    assert rows["alerts_rules"] and rows["alerts_alerts"] and rows["alerts_outbox"]
    dump = "\n".join(str(dict(r)) for table in rows.values() for r in table)
    for secret in SECRETS:
        assert secret not in dump, secret[:10]
    assert "sealed:" in dump


async def test_a_rule_sent_back_masked_keeps_its_targets(alerts_suite, http, receiver):
    """A client that reads a rule and changes one field sends the masks back: they stand for
    the stored targets; the secret, never shown, is given again."""
    async with _suite(alerts_suite, receiver, Fernet.generate_key().decode()) as suite:
        r = await http.post(f"{suite.base}/alerts/configure", json=_rule(receiver),
                            headers=suite.headers("operator"))
        assert r.status_code == 201, r.text
        shown = r.json()["rule"]
        edited = {**_rule(receiver), "threshold": 60, "notify": shown["notify"]}
        r = await http.post(f"{suite.base}/alerts/configure", json=edited,
                            headers=suite.headers("operator"))
        assert r.status_code == 200, r.text
        assert r.json()["rule"]["notify"] == shown["notify"]
        r = await http.post(f"{suite.base}/alerts/rules/sealed_rule/test",
                            headers=suite.headers("operator"))
        assert all(d["success"] for d in r.json()["deliveries"]), r.text
    assert receiver.at(f"/slack/{SLACK_TOKEN}") and receiver.at(f"/teams/{TEAMS_TOKEN}")
    assert receiver.at("/pagerduty")[-1].json["routing_key"] == ROUTING_KEY


async def test_plaintext_from_before_is_sealed_on_start(alerts_suite, http, receiver, tmp_path):
    key = Fernet.generate_key().decode()
    async with _suite(alerts_suite, receiver, key) as suite:
        r = await http.post(f"{suite.base}/alerts/configure", json=_rule(receiver),
                            headers=suite.headers("operator"))
        assert r.status_code == 201, r.text
    # Write the row as the store did before encryption: the spec and secret in clear.
    with sqlite3.connect(tmp_path / "botmon.db") as db:
        spec = json.loads(db.execute("SELECT spec FROM alerts_rules").fetchone()[0])
        spec["notify"].update(slack=receiver.url(f"/slack/{SLACK_TOKEN}"),
                              teams=receiver.url(f"/teams/{TEAMS_TOKEN}"), pagerduty=ROUTING_KEY)
        db.execute("UPDATE alerts_rules SET spec = ?, secret = ?",
                   (json.dumps(spec, sort_keys=True), SECRET))
    db.close()
    assert _files_holding_secrets(tmp_path)  # the plaintext is there now
    async with _suite(alerts_suite, receiver, key) as suite:
        assert _files_holding_secrets(tmp_path) == []
        await _api_shows_no_secret(suite, http, receiver)
        r = await http.post(f"{suite.base}/alerts/rules/sealed_rule/test",
                            headers=suite.headers("operator"))
        assert all(d["success"] for d in r.json()["deliveries"]), r.text
    assert _signed_correctly(receiver.at("/hook")[-1])
    assert receiver.at(f"/slack/{SLACK_TOKEN}") and receiver.at(f"/teams/{TEAMS_TOKEN}")
    assert receiver.at("/pagerduty")[-1].json["routing_key"] == ROUTING_KEY


async def test_signatures_verify_after_key_rotation_and_restart(alerts_suite, http, receiver):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    async with _suite(alerts_suite, receiver, old) as suite:
        await _configure_and_fire(suite, http, receiver)
    # Rotation: the new key first, the old one kept to open what it sealed.
    async with _suite(alerts_suite, receiver, new, old) as suite:
        r = await http.post(f"{suite.base}/alerts/rules/sealed_rule/test",
                            headers=suite.headers("operator"))
        assert r.status_code == 200 and all(d["success"] for d in r.json()["deliveries"])
    assert _signed_correctly(receiver.at("/hook")[-1])
    # Everything was re-sealed with the new key on that start: the old one can go.
    async with _suite(alerts_suite, receiver, new) as suite:
        r = await http.post(f"{suite.base}/alerts/rules/sealed_rule/test",
                            headers=suite.headers("operator"))
        assert r.status_code == 200 and all(d["success"] for d in r.json()["deliveries"])
    assert _signed_correctly(receiver.at("/hook")[-1])


async def test_failed_deliveries_log_no_secret(alerts_suite, http, receiver, caplog):
    caplog.set_level(logging.DEBUG)
    for path in ("/hook", f"/slack/{SLACK_TOKEN}", "/pagerduty"):
        receiver.fail(path, *[500] * 3)
    # Teams on a closed port: the connection itself fails, with the URL at hand.
    rule = _rule(receiver)
    rule["notify"]["teams"] = f"http://127.0.0.1:{free_port()}/teams/{TEAMS_TOKEN}"
    async with _suite(alerts_suite, receiver, Fernet.generate_key().decode()) as suite:
        r = await http.post(f"{suite.base}/alerts/configure", json=rule,
                            headers=suite.headers("operator"))
        assert r.status_code == 201, r.text
        suite.metrics.values["memory.usage_percent"] = 80.0

        def failed_channels() -> set[str]:
            return {getattr(r, "channel", None) for r in caplog.records
                    if r.getMessage() == "delivery failed"}
        await eventually(lambda: failed_channels() >= {"webhook", "slack", "teams", "pagerduty"},
                         within=30)
        # The retries then succeed: every failure has been logged by the time they arrive.
        await eventually(lambda: receiver.at("/hook")[3:] and receiver.at("/pagerduty")[3:]
                         and receiver.at(f"/slack/{SLACK_TOKEN}")[3:], within=30)
    # Each record as the process writes it (JsonFormatter), extra fields included; all but
    # those of the stand-in receiver's own HTTP server, which runs in this process too.
    formatter = JsonFormatter("alerts")
    logged = [formatter.format(record) for record in caplog.records
              if not record.name.startswith(("aiohttp.access", "aiohttp.server"))]
    assert any("delivery failed" in line for line in logged)
    leaks = [line for line in logged for secret in SECRETS if secret in line]
    assert not leaks, leaks[:3]


def _alerts_process(data_dir: Path, **env: str) -> subprocess.Popen:
    environ = {k: v for k, v in os.environ.items() if k != "BOTMON_SECRET_KEY"}
    environ.update({"BOTMON_DATA_DIR": str(data_dir),
                    "BOTMON_ALERTS_ADDR": f"127.0.0.1:{free_port()}",
                    "BOTMON_HEALTH_TARGET": f"127.0.0.1:{free_port()}",
                    "BOTMON_METRICS_TARGET": f"127.0.0.1:{free_port()}", **env})
    return subprocess.Popen([sys.executable, "-m", "services.alerts"], cwd=os.getcwd(),
                            env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


async def test_a_wrong_key_stops_the_alerts_process_with_one_line(alerts_suite, http, receiver,
                                                                  tmp_path):
    async with _suite(alerts_suite, receiver, Fernet.generate_key().decode()) as suite:
        r = await http.post(f"{suite.base}/alerts/configure", json=_rule(receiver),
                            headers=suite.headers("operator"))
        assert r.status_code == 201, r.text
    proc = _alerts_process(tmp_path, BOTMON_SECRET_KEY=Fernet.generate_key().decode())
    out, err = await asyncio.to_thread(proc.communicate, timeout=30)
    assert proc.returncode == 2, err[-2000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("botmon: BOTMON_SECRET_KEY: "), err[-2000:]


def test_without_a_key_one_is_made_in_the_data_dir(tmp_path):
    data = tmp_path / "data"
    port = free_port()
    proc = _alerts_process(data, BOTMON_ALERTS_ADDR=f"127.0.0.1:{port}")
    try:
        key_file = data / "secret-key"
        # Serving comes after the key is written and announced; the file alone may still
        # be empty, and stopping then would cut the announcement short.
        wait_until(lambda: grpc_serving(f"127.0.0.1:{port}") or proc.poll() is not None,
                   "the alerts service serving", 30)
        assert proc.poll() is None, proc.communicate()[1][-2000:]
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=20)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    Fernet(key_file.read_text().strip())  # a usable key
    assert str(key_file) in out and "BOTMON_SECRET_KEY" in out
    assert key_file.read_text().strip() not in out + err
