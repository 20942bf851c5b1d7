"""The gateway as its own process: start, bootstrap token, answer, stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time

import httpx

from tests.conftest import free_port


def test_process_serves_and_stops_on_sigterm(tmp_path):
    port = free_port()
    env = {**os.environ, "BOTMON_HTTP_ADDR": f"127.0.0.1:{port}",
           "BOTMON_DATA_DIR": str(tmp_path), "BOTMON_HEALTH_TARGET": f"127.0.0.1:{free_port()}"}
    for name in ("BOTMON_API_TOKENS", "BOTMON_JWT_SECRET", "BOTMON_JWT_PUBLIC_KEY"):
        env.pop(name, None)
    proc = subprocess.Popen([sys.executable, "-m", "gateway"], cwd=os.getcwd(), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/api/v1/monitoring/health/live", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline, "gateway did not start"
                time.sleep(0.1)
        assert r.status_code == 200
        token = (tmp_path / "admin-token").read_text().strip()
        assert stat.S_IMODE((tmp_path / "admin-token").stat().st_mode) == 0o600
        r = httpx.get(f"http://127.0.0.1:{port}/api/v1/monitoring/health/detailed", timeout=5,
                      headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 503 and "health service" in r.json()["error"]["message"]
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert out.count(token) == 1


def test_bad_setting_exits_2_naming_it(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "gateway"], capture_output=True, text=True,
                          env={**os.environ, "BOTMON_HTTP_ADDR": "nowhere",
                               "BOTMON_DATA_DIR": str(tmp_path)}, timeout=30)
    assert proc.returncode == 2
    assert "BOTMON_HTTP_ADDR" in proc.stderr
