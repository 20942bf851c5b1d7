"""Child processes of a benchmark: started with their output in a log file, always stopped.

    with Processes(Path(tmp)) as procs:
        proc = procs.start("gateway", [sys.executable, "-m", "gateway"], env)
        wait_http(url, procs, "gateway", proc, token)
    # every child is stopped here (SIGTERM, then SIGKILL), even on error
"""

from __future__ import annotations

import contextlib
import math
import secrets
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

__all__ = ["INTERNAL_TOKEN", "ROOT", "Processes", "figure", "free_port", "internal_channel",
           "wait_http", "wait_port"]

ROOT = Path(__file__).resolve().parents[1]
#: The internal credential of every process a benchmark starts (``BOTMON_INTERNAL_TOKEN``).
INTERNAL_TOKEN = secrets.token_urlsafe(32)


def internal_channel(target: str):
    """A channel to a benchmark's service carrying the internal credential."""
    from botmon.runtime.channels import open_channel

    return open_channel(target, token=INTERNAL_TOKEN)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Processes:
    """Child processes that are all stopped on exit: SIGTERM to all at once, then SIGKILL
    to whatever outlives ``grace`` seconds."""

    def __init__(self, logdir: Path, grace: float = 10.0):
        self.logdir = logdir
        self.grace = grace
        self._children: list[tuple[subprocess.Popen, object]] = []

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None):
        log = (self.logdir / f"{name}.log").open("wb")
        try:
            proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT)
        except BaseException:
            log.close()
            raise
        self._children.append((proc, log))
        return proc

    def tail(self, name: str) -> str:
        return (self.logdir / f"{name}.log").read_text(errors="replace")[-2000:]

    def stop_child(self, proc) -> None:
        """Stop one child started here (SIGTERM, then SIGKILL after ``grace`` seconds)."""
        children = [child for child in self._children if child[0] is proc]
        self._children = [child for child in self._children if child[0] is not proc]
        self._stop(children)

    def stop(self) -> None:
        """Stop every child; they drain in parallel, so this takes one grace period at most."""
        children, self._children = self._children, []
        self._stop(children)

    def _stop(self, children: list[tuple[subprocess.Popen, object]]) -> None:
        for proc, _ in children:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + self.grace
        for proc, log in children:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            log.close()


def wait_http(url: str, procs: Processes, name: str, proc, token: str,
              timeout: float = 60.0) -> None:
    """Wait until ``GET url`` answers 200 (with ``token`` as the bearer)."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited ({proc.returncode}):\n{procs.tail(name)}")
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:g}s:\n{procs.tail(name)}")


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout:g}s")


def figure(name: str, value: float, unit: str, baseline: float) -> None:
    """Print one figure as ``name: value unit (baseline: value, ratio: x.xx)``."""
    ratio = value / baseline if baseline else math.nan
    print(f"{name}: {value:.2f} {unit} (baseline: {baseline:.2f}, ratio: {ratio:.2f})",
          flush=True)
