"""Throwaway PostgreSQL and Redis servers that a fault test may stop and start again.

The machine's own servers are never touched: each of these runs on a free port
in a temporary directory and keeps that port across restarts, so the suite's
processes reconnect to the same URL.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import redis

from tests.conftest import _start_postgres
from tests.e2e.cluster import free_port
from tests.waiting import wait_until

__all__ = ["OwnPostgres", "OwnRedis"]


class OwnPostgres:
    """A PostgreSQL cluster of its own (see ``tests/conftest.py``), stoppable and restartable."""

    def __init__(self):
        self.url, self._stop_cmd, self.workdir = _start_postgres()
        # _start_postgres stops with [*prefix, pg_ctl, "-D", data, "-m", "immediate", "stop"].
        self._prefix, self._pg_ctl, self._data = (self._stop_cmd[:-6], self._stop_cmd[-6],
                                                  self._stop_cmd[-4])
        self.port = int(self.url.rsplit(":", 1)[1].split("/", 1)[0])
        self.running = True

    def stop(self) -> None:
        """Stop at once, as a crash would (no checkpoint, clients cut off)."""
        subprocess.run(self._stop_cmd, capture_output=True, timeout=30)
        self.running = False

    def start(self) -> None:
        """Start again on the same port and socket directory."""
        subprocess.run([*self._prefix, self._pg_ctl, "-D", self._data,
                        "-l", str(Path(self.workdir) / "log"),
                        "-o", f"-p {self.port} -k {self.workdir} "
                              "-c listen_addresses=127.0.0.1 -c fsync=off",
                        "-w", "start"], check=True, capture_output=True, timeout=60)
        self.running = True

    def close(self) -> None:
        if self.running:
            self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


class OwnRedis:
    """A ``redis-server`` of its own on a free port, without persistence."""

    def __init__(self):
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed")
        self.exe = exe
        self.port = free_port()
        self.workdir = tempfile.mkdtemp(prefix="botmon-e2e-redis-")
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.workdir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: redis.Redis.from_url(self.url, socket_timeout=1).ping(),
                   "redis-server answering", 20)

    def stop(self) -> None:
        """Kill it outright: clients see connections reset and then refused."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
            self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
