"""The data dir is 0700 and the SQLite store (database, WAL, shared memory) 0600, whatever the
umask: other users of the machine cannot read logs, rules or tokens."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.harness import Suite


@pytest.fixture
def loose_umask():
    """The usual 022: files 0644 and directories 0755 unless the program says otherwise."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def _write_through_the_suite(data: Path, make_settings, http) -> None:
    async with Suite(make_settings(data_dir=data), components=("logs", "alerts")) as suite:
        r = await http.post(f"{suite.base}/logs", headers=suite.headers("operator"),
                            json={"logs": [{"level": "info", "service": "bot", "message": "hi"}]})
        assert r.status_code == 202, r.text
        db = data / "botmon.db"
        for path in (db, db.with_name("botmon.db-wal"), db.with_name("botmon.db-shm")):
            assert path.exists(), path.name
            assert _mode(path) == 0o600, (path.name, oct(_mode(path)))


async def test_a_new_data_dir_and_store_are_private(tmp_path, make_settings, http, loose_umask):
    data = tmp_path / "state" / "data"
    await _write_through_the_suite(data, make_settings, http)
    assert _mode(data) == 0o700 and _mode(data.parent) == 0o700
    for path in data.iterdir():
        if path.is_file():
            assert _mode(path) == 0o600, (path.name, oct(_mode(path)))


async def test_an_existing_world_readable_store_is_made_private(tmp_path, make_settings, http,
                                                                loose_umask):
    data = tmp_path / "data"
    data.mkdir()
    (data / "botmon.db").touch()
    (data / "botmon.db").chmod(0o644)  # as an earlier version left it under umask 022
    await _write_through_the_suite(data, make_settings, http)
