"""``uptime_seconds`` is the platform's uptime: the longest-running live registered instance.

Platform instances are real processes that register with the client SDK's
``Heartbeat``; figures are read over gRPC, REST and the Prometheus exposition.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import grpc
import httpx
import psutil
import pytest

from botmon.client import Heartbeat
from botmon.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from botmon.runtime.config import ConfigError
from services.metrics.config import MetricsSettings
from tests.conftest import suite_channel
from tests.harness import Suite
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
#: Quick re-reads, so that a change shows within a second or two.
QUICK = MetricsSettings(uptime_refresh=0.2, snapshot_ttl=0.5, figures_min_refresh=0.1)
#: The platform's instances heartbeat every 0.3 s with a 1 s TTL.
TTL = 1


def _platform(suite: Suite, name: str) -> subprocess.Popen:
    """A platform process that registers as ``name`` and then idles."""
    code = ("import time\n"
            "from botmon.client import Heartbeat\n"
            f"Heartbeat('127.0.0.1:{suite.ports['health']}', name={name!r}, interval=0.3,\n"
            f"          ttl_seconds={TTL}, token={suite.tokens['operator']!r})\n"
            "time.sleep(600)\n")
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.DEVNULL)


def _age(proc: subprocess.Popen | None = None) -> float:
    """Seconds since ``proc`` (or this process, which runs the in-process suite) started."""
    return time.time() - psutil.Process(proc.pid if proc else None).create_time()


class Figures:
    """The uptime figure as gRPC, REST and Prometheus give it."""

    def __init__(self, suite: Suite, http: httpx.AsyncClient, channel: grpc.aio.Channel):
        self.suite = suite
        self.http = http
        self.stub = metrics_service_pb2_grpc.MetricsServiceStub(channel)

    async def read(self) -> list[tuple[float, str]]:
        reply = await self.stub.GetApplicationMetrics(
            metrics_service_pb2.GetApplicationMetricsRequest(), timeout=5)
        rest = (await self.http.get(f"{self.suite.base}/metrics/application",
                                    headers=self.suite.headers())).json()
        text = (await self.http.get(f"{self.suite.base}/metrics/prometheus",
                                    headers=self.suite.headers())).text
        [(source, value)] = re.findall(r'^botserver_uptime_seconds\{source="(\w+)"\} (\S+)$',
                                       text, re.M)
        return [(reply.application.uptime_seconds, reply.application.uptime_source),
                (rest["application"]["uptime_seconds"], rest["application"]["uptime_source"]), (float(value), source)]

    async def until(self, source: str, age, within: float = 15) -> list[tuple[float, str]]:
        """Every surface reports ``source`` with an uptime within 2 s of ``age()``."""
        deadline = time.monotonic() + within
        while True:
            read = await self.read()
            expected = age()
            if all(s == source and abs(u - expected) <= 2 for u, s in read):
                return read
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {source} uptime ~{expected:.0f}s, got {read}")
            await asyncio.sleep(0.1)


def _suite(make_settings, ms: MetricsSettings = QUICK) -> Suite:
    return Suite(make_settings(), components=("health", "metrics"),
                 options={"metrics": {"metrics_settings": ms}})


async def test_uptime_follows_the_longest_running_live_platform_instance(make_settings):
    procs: list[subprocess.Popen] = []
    async with _suite(make_settings) as suite, httpx.AsyncClient(timeout=10) as http, \
            suite_channel(f"127.0.0.1:{suite.ports['metrics']}", suite.settings) as channel:
        figures = Figures(suite, http, channel)
        try:
            # No platform registered: botmon's own uptime (its components run in this process).
            await figures.until("botmon", _age)

            # One registered instance: its uptime, from the start time its heartbeat carries.
            procs.append(older := _platform(suite, "web_server"))
            await figures.until("platform", lambda: _age(older))
            status = (await http.get(f"{suite.base}/status", headers=suite.headers())).json()
            [entry] = [s for s in status["services"] if s["name"] == "web_server"]
            assert abs(entry["uptime_seconds"] - _age(older)) <= 2

            # Two instances: the longer-running one counts.
            await asyncio.sleep(3)
            procs.append(newer := _platform(suite, "web_server"))
            await figures.until("platform", lambda: _age(older))
            assert _age(older) - _age(newer) >= 2

            # The older one's heartbeat lapses: the newer one's uptime.
            older.kill()
            await figures.until("platform", lambda: _age(newer))

            # A restart of the registered instance resets the figure.
            newer.kill()
            procs.append(restarted := _platform(suite, "web_server"))
            await figures.until("platform", lambda: _age(restarted))
            assert _age(restarted) < 3

            # Every platform instance gone: back to botmon's own uptime.
            restarted.kill()
            await figures.until("botmon", _age)
        finally:
            for proc in procs:
                proc.kill()
                proc.wait(10)


@pytest.mark.parametrize("platform", [("web_server",), ()], ids=["narrowed", "default"])
async def test_which_registrations_count(make_settings, platform):
    ms = MetricsSettings(uptime_refresh=0.2, snapshot_ttl=0.5, figures_min_refresh=0.1,
                         platform_services=platform)
    async with _suite(make_settings, ms) as suite, \
            httpx.AsyncClient(timeout=10) as http, \
            suite_channel(f"127.0.0.1:{suite.ports['metrics']}", suite.settings) as channel:
        figures = Figures(suite, http, channel)
        worker = _platform(suite, "worker")
        try:
            await asyncio.sleep(3)
            web = _platform(suite, "web_server")
            try:
                # botmon's own components register too, and never count as the platform.
                await figures.until("platform", lambda: _age(web if platform else worker))
            finally:
                web.kill()
                web.wait(10)
        finally:
            worker.kill()
            worker.wait(10)


async def test_the_sdk_heartbeat_carries_the_process_start_and_deregisters_on_close(
        make_settings):
    async with Suite(make_settings(), components=("health",)) as suite, \
            httpx.AsyncClient(timeout=10) as http:

        async def listed() -> list[dict]:
            status = (await http.get(f"{suite.base}/status", headers=suite.headers())).json()
            return [s for s in status["services"] if s["name"] == "web_server"]

        heartbeat = await asyncio.to_thread(
            Heartbeat, f"127.0.0.1:{suite.ports['health']}", name="web_server", port=8080,
            version="2.1", interval=0.2, token=suite.tokens["operator"])
        try:
            entry = await eventually(listed)
        finally:
            await asyncio.to_thread(heartbeat.close)
        assert [(e["status"], e["pid"], e["port"], e["version"]) for e in entry] == [
            ("running", os.getpid(), 8080, "2.1")]
        assert abs(entry[0]["uptime_seconds"] - _age()) <= 2
        assert await listed() == []


def test_platform_services_must_name_services():
    with pytest.raises(ConfigError, match="BOTMON_PLATFORM_SERVICES"):
        MetricsSettings.from_env({"BOTMON_PLATFORM_SERVICES": " , "})
    assert MetricsSettings.from_env(
        {"BOTMON_PLATFORM_SERVICES": "web_server, worker"}).platform_services == (
        "web_server", "worker")
