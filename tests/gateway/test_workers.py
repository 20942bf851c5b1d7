"""BOTMON_GATEWAY_WORKERS: several worker processes on one port, rate limits exact via Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import psutil

from tests.conftest import free_port

TOKEN = "workers-test-token-0123456789abcdef"


def test_two_workers_share_the_port_and_one_exact_rate_limit(tmp_path, redis_url):
    port = free_port()
    env = {**os.environ, "BOTMON_HTTP_ADDR": f"127.0.0.1:{port}", "BOTMON_GATEWAY_WORKERS": "2",
           "BOTMON_DATA_DIR": str(tmp_path), "BOTMON_REDIS_URL": redis_url,
           "BOTMON_API_TOKENS": f"{TOKEN}:viewer", "BOTMON_RATE_LIMITS": "alerts=7/minute",
           "BOTMON_HEALTH_TARGET": f"127.0.0.1:{free_port()}",
           "BOTMON_ALERTS_TARGET": f"127.0.0.1:{free_port()}"}
    proc = subprocess.Popen([sys.executable, "-m", "gateway"], cwd=os.getcwd(), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(psutil.Process(proc.pid).children(recursive=True)) < 2 or not _live(port):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "gateway workers did not start"
            time.sleep(0.2)
        statuses = []
        # New connections each time, so that both workers take some of them.
        for _ in range(20):
            r = httpx.get(f"http://127.0.0.1:{port}/api/v1/monitoring/alerts", timeout=10,
                          headers={"Authorization": f"Bearer {TOKEN}"})
            statuses.append(r.status_code)
        assert statuses.count(429) == 13, statuses  # 7 allowed (then no backend: 503)
        assert 429 not in statuses[:7]
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0


def _live(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/api/v1/monitoring/health/live",
                         timeout=1).status_code == 200
    except httpx.TransportError:
        return False
