"""As a new user: only OTEL_EXPORTER_OTLP_ENDPOINT set, ``botmon up``, one POST /logs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import free_port
from tests.export.receivers import GrpcReceiver

ROOT = Path(__file__).resolve().parents[2]
#: BOTMON_EXPORT_INTERVAL's default: the lines must arrive within it plus a second.
INTERVAL = 60.0


def _children(parent: int) -> dict[str, int]:
    """The pids of ``parent``'s ``python -m MODULE`` children, by module."""
    found = {}
    for child in psutil.Process(parent).children():
        argv = child.cmdline()
        if "-m" in argv:
            found[argv[argv.index("-m") + 1]] = child.pid
    return found


@pytest.mark.timeout(240)
async def test_only_the_otlp_endpoint_set_gets_a_posted_line_to_the_receiver(tmp_path):
    receiver = GrpcReceiver()
    await receiver.up()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOTMON_", "OTEL_"))}
    env.update({"BOTMON_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1",
                "BOTMON_HTTP_ADDR": f"127.0.0.1:{free_port()}",
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint})
    for name in ("health", "metrics", "alerts", "logs", "export"):
        env[f"BOTMON_{name.upper()}_ADDR"] = f"127.0.0.1:{free_port()}"
    out = (tmp_path / "stdout.txt").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "botmon.cli", "up", cwd=ROOT, env=env,
        stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 150
        while "all 6 components ready" not in (tmp_path / "stdout.txt").read_text():
            assert proc.returncode is None and time.monotonic() < deadline, \
                (tmp_path / "stdout.txt").read_text()[-3000:]
            await asyncio.sleep(0.2)
        token = (tmp_path / "data" / "admin-token").read_text().strip()
        base = f"http://{env['BOTMON_HTTP_ADDR']}/api/v1/monitoring"
        async with httpx.AsyncClient(timeout=10) as http:
            r = await http.post(f"{base}/logs", headers={"Authorization": f"Bearer {token}"},
                                json={"logs": [{"level": "info", "service": "newcomer",
                                                "message": "hello, collector"}]})
            assert r.status_code in (200, 201, 202), r.text
            posted = time.monotonic()
            while "hello, collector" not in receiver.received.bodies():
                assert time.monotonic() - posted < INTERVAL + 1, "the line did not arrive"
                await asyncio.sleep(0.05)
            status = (await http.get(f"{base}/status",
                                     headers={"Authorization": f"Bearer {token}"})).json()
        names = [s["name"] for s in status["services"]]
        assert "export" in names
        # The export is background work: it runs on CPU time the services leave unused.
        children = _children(proc.pid)
        assert os.sched_getscheduler(children["services.export"]) == os.SCHED_IDLE
        assert os.sched_getscheduler(children["services.logs"]) == os.SCHED_OTHER
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        out.close()
        await receiver.down()
