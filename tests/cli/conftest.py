"""Fixtures for driving the ``botmon`` command as a real subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Run:
    """A ``botmon`` subprocess whose stdout and stderr go to files."""

    proc: subprocess.Popen
    stdout_path: Path
    stderr_path: Path

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def output(self) -> str:
        return f"--- stdout\n{self.stdout[-4000:]}\n--- stderr\n{self.stderr[-4000:]}"

    def wait_for(self, predicate: Callable[[], object], what: str, timeout: float = 60.0, *,
                 running: bool = True):
        """Poll ``predicate`` until truthy; fail naming ``what`` (and early if botmon exits)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = predicate()
            except Exception:
                value = None
            if value:
                return value
            if running and self.proc.poll() is not None:
                pytest.fail(f"botmon exited ({self.proc.returncode}) while waiting for "
                            f"{what}\n{self.output()}")
            time.sleep(0.1)
        pytest.fail(f"timed out after {timeout}s waiting for {what}\n{self.output()}")

    def wait_line(self, pattern: str, timeout: float = 60.0, start: int = 0) -> re.Match:
        """The first match of ``pattern`` in stdout after offset ``start``."""
        regex = re.compile(pattern, re.M)
        return self.wait_for(lambda: regex.search(self.stdout, start), repr(pattern), timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def suite_env(tmp_path) -> dict[str, str]:
    """A clean environment: no inherited BOTMON_* settings, free ports, a temp data dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOTMON_")}
    env.update({
        "BOTMON_DATA_DIR": str(tmp_path / "data"),
        "BOTMON_HTTP_ADDR": f"127.0.0.1:{free_port()}",
        "BOTMON_PROBE_INTERVAL": "1",
        "BOTMON_HEARTBEAT_INTERVAL": "1",
        "PYTHONUNBUFFERED": "1",
    })
    for name in ("health", "metrics", "alerts", "logs", "export"):
        env[f"BOTMON_{name.upper()}_ADDR"] = f"127.0.0.1:{free_port()}"
    return env


@pytest.fixture
def botmon(tmp_path):
    """Start ``botmon <args>`` in a subprocess; every one started is killed at teardown."""
    runs: list[Run] = []

    def start(*args: str, env: dict[str, str]) -> Run:
        n = len(runs)
        out, err = tmp_path / f"stdout-{n}.txt", tmp_path / f"stderr-{n}.txt"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            proc = subprocess.Popen([sys.executable, "-m", "botmon.cli", *args], cwd=ROOT,
                                    env=env, stdin=subprocess.DEVNULL, stdout=stdout,
                                    stderr=stderr)
        runs.append(Run(proc, out, err))
        return runs[-1]

    yield start
    for run in runs:
        run.stop()
