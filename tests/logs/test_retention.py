"""Retention by age (per level) and by size, enforced in the background, reported for /status."""

from __future__ import annotations

import asyncio

import pytest

from services.logs.config import LogsSettings, parse_retention, parse_size
from tests.logs.support import entry, now

DAY = 86_400.0


@pytest.fixture
def logs_settings() -> LogsSettings:
    return LogsSettings(retention=parse_retention("debug=3d,warn=10d,default=30d"),
                        max_bytes=parse_size("40KB"), retention_interval=0.2,
                        retention_batch=7)


async def _settled(logs, predicate) -> None:
    """Wait for background retention until ``predicate(details)`` holds."""
    for _ in range(200):
        details = logs.server.details()["retention"]
        if details["last_run"] and predicate(details):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"retention did not settle: {logs.server.details()['retention']}")


async def test_old_entries_go_by_their_level_age(logs):
    t = now()
    await logs.write([
        entry("debug", message="debug 2 days", ts=t - 2 * DAY),
        entry("debug", message="debug 4 days", ts=t - 4 * DAY),
        entry("info", message="info 20 days", ts=t - 20 * DAY),
        entry("info", message="info 31 days", ts=t - 31 * DAY),
        entry("warn", message="warn 9 days", ts=t - 9 * DAY),
        entry("warn", message="warn 11 days", ts=t - 11 * DAY),
        entry("error", message="error 29 days", ts=t - 29 * DAY),
        entry("error", message="error 40 days", ts=t - 40 * DAY),
    ] + [entry("debug", message=f"old debug {i}", ts=t - 5 * DAY + i) for i in range(30)])
    await _settled(logs, lambda d: d["stored_entries"] == 4)
    kept = sorted(e.message for e in (await logs.list()).logs)
    assert kept == ["debug 2 days", "error 29 days", "info 20 days", "warn 9 days"]
    report = logs.server.details()["retention"]
    assert report["max_age_days"] == {"debug": 3, "info": 30, "warn": 10, "error": 30}
    assert report["max_bytes"] == 40_000


async def test_the_oldest_go_when_the_store_is_too_big(logs):
    t = now() - 3600
    # ~100 KB in 400 entries of ~250 bytes, in one commit so no run sees a part of it.
    await logs.write([entry(message=f"{i:04d} " + "x" * 180, ts=t + i) for i in range(400)])
    await _settled(logs, lambda d: 0 < d["stored_bytes"] <= 40_000)
    report = logs.server.details()["retention"]
    entries, _ = await logs.all_pages(order="asc", limit=1000)
    assert len(entries) == report["stored_entries"]
    assert 100 < len(entries) < 400
    # Exactly the newest ones are left.
    assert [e.message[:4] for e in entries] == [f"{n:04d}" for n in
                                                range(400 - len(entries), 400)]
    assert 40_000 - 300 <= report["stored_bytes"] <= 40_000


async def test_ingest_goes_on_while_retention_deletes(logs):
    t = now()
    await logs.write([entry("debug", message=f"stale {i}", ts=t - 5 * DAY) for i in range(300)])
    replies = []
    for i in range(20):
        replies.append(await logs.write([entry("error", message=f"fresh {i}")]))
    assert all(r.accepted == 1 for r in replies)
    await _settled(logs, lambda d: d["stored_entries"] == 20)
    assert (await logs.list(q="fresh")).total == 20
    assert (await logs.list(q="stale")).total == 0


@pytest.mark.parametrize(("raw", "says"), [
    ("debug=3x", "whole number of days"), ("loud=3d", "level must be one of"),
    ("info=0d", "whole number of days"),
])
def test_bad_retention_settings_name_the_variable(raw, says):
    from botmon.runtime.config import ConfigError

    with pytest.raises(ConfigError) as info:
        LogsSettings.from_env({"BOTMON_LOG_RETENTION": raw})
    assert str(info.value).startswith("BOTMON_LOG_RETENTION: ") and says in str(info.value)
    with pytest.raises(ConfigError, match="BOTMON_LOG_MAX_BYTES: expected a size"):
        LogsSettings.from_env({"BOTMON_LOG_MAX_BYTES": "lots"})


def test_retention_settings_parse():
    settings = LogsSettings.from_env({"BOTMON_LOG_RETENTION": "debug=3d, info=14,default=60d",
                                      "BOTMON_LOG_MAX_BYTES": "2GiB"})
    assert settings.max_age_days() == {"debug": 3, "info": 14, "warn": 60, "error": 60}
    assert settings.max_bytes == 2 * 2**30
    assert LogsSettings.from_env({}).max_age_days() == dict.fromkeys(
        ("debug", "info", "warn", "error"), 30)
