"""``uptime_seconds`` is the platform's uptime: the longest-running live registered instance.

Platform instances are real processes that register with the client SDK's
``Heartbeat``; figures are read over gRPC, REST and the Prometheus exposition.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import subprocess
import sys
import time
from pathlib import Path

import grpc
import httpx
import psutil
import pytest

from botmon.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from botmon.runtime.config import ConfigError
from services.health.status_view import REFRESH
from services.metrics.config import MetricsSettings
from tests.conftest import suite_channel
from tests.harness import Suite
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
#: Quick re-reads, so that a change shows within a second or two.
QUICK = MetricsSettings(uptime_refresh=0.2, snapshot_ttl=0.5, figures_min_refresh=0.1)
#: The platform's instances heartbeat every 0.3 s with a 1 s TTL.
TTL = 1
#: Whole seconds, as of a refresh of the figures at most the snapshot's TTL old.
LAG = 1 + QUICK.snapshot_ttl
#: A read of the registrations and the refresh of the figures it causes, three times over.
SETTLE = 3 * (QUICK.uptime_refresh + QUICK.figures_min_refresh + QUICK.snapshot_ttl)
#: /status's uptimes: whole seconds, as of the status list's last rebuild.
STATUS_LAG = 1 + REFRESH
#: Seconds between the starts of two instances, far more than LAG.
GAP = 6


def _platform(suite: Suite, name: str, *, after: float = 0, **heartbeat) -> subprocess.Popen:
    """A platform process that, ``after`` seconds from its start, registers as ``name`` with
    the client SDK's ``Heartbeat`` and deregisters when its stdin closes."""
    options = {"interval": 0.3, "ttl_seconds": TTL, **heartbeat}
    code = ("import sys, time\n"
            "from botmon.client import Heartbeat\n"
            f"time.sleep({after})\n"
            f"heartbeat = Heartbeat('127.0.0.1:{suite.ports['health']}', name={name!r},\n"
            f"                      token={suite.tokens['operator']!r}, **{options!r})\n"
            "sys.stdin.read()\n"
            "heartbeat.close()\n")
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE)


def _end(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait(10)
    proc.stdin.close()


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

    async def check(self, source: str, age) -> tuple[list[tuple[float, str]], str]:
        """What every surface reports, and how it differs from ``source`` with the uptime
        ``age()`` (at most LAG behind); empty when it does not."""
        low = age() - LAG
        read = await self.read()
        high = age()
        if all(s == source and low <= u <= high for u, s in read):
            return read, ""
        return read, f"expected {source} uptime in [{low:.1f}, {high:.1f}] s, got {read}"

    async def until(self, source: str, age, within: float = 15) -> None:
        """Wait until every surface reports ``source`` with the uptime ``age()``."""
        deadline = time.monotonic() + within
        while True:
            _, wrong = await self.check(source, age)
            if not wrong:
                return
            if time.monotonic() > deadline:
                raise AssertionError(wrong)
            await asyncio.sleep(0.1)

    async def stays(self, age, *, not_age) -> None:
        """Every surface reports the platform's uptime ``age()``, and does in every read for
        SETTLE seconds after, never within 2 s of ``not_age()``."""
        await self.until("platform", age)
        end = time.monotonic() + SETTLE
        while time.monotonic() < end:
            read, wrong = await self.check("platform", age)
            assert not wrong, wrong
            assert all(abs(u - not_age()) > 2 for u, _ in read), (
                f"{read} is within 2 s of the uptime {not_age():.1f} s it must not be")
            await asyncio.sleep(0.1)


async def _listed(suite: Suite, http: httpx.AsyncClient, *procs: subprocess.Popen) -> None:
    """Wait until /status lists each of ``procs`` as running."""

    async def running() -> bool:
        status = (await http.get(f"{suite.base}/status", headers=suite.headers())).json()
        pids = {s["pid"] for s in status["services"] if s["status"] == "running"}
        return pids >= {proc.pid for proc in procs}

    await eventually(running, within=15)


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
            assert _age(older) - STATUS_LAG <= entry["uptime_seconds"] <= _age(older)

            # Two instances: the longer-running one counts, once the newer one is listed too
            # and the figures were refreshed from the registrations since.
            await asyncio.sleep(GAP - _age(older))
            procs.append(newer := _platform(suite, "web_server"))
            await _listed(suite, http, older, newer)
            await figures.stays(lambda: _age(older), not_age=lambda: _age(newer))

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
                _end(proc)


@pytest.mark.parametrize("platform", [("web_server",), ()], ids=["narrowed", "default"])
async def test_which_registrations_count(make_settings, platform):
    async with _suite(make_settings, dataclasses.replace(QUICK, platform_services=platform)) \
            as suite, httpx.AsyncClient(timeout=10) as http, \
            suite_channel(f"127.0.0.1:{suite.ports['metrics']}", suite.settings) as channel:
        figures = Figures(suite, http, channel)
        worker = _platform(suite, "worker")
        try:
            await asyncio.sleep(GAP - _age(worker))
            web = _platform(suite, "web_server")
            try:
                await _listed(suite, http, worker, web)
                # Narrowed, the older worker does not count; by default both do, and the
                # worker is the longer-running. botmon's own components, registered too,
                # never count as the platform.
                counted, other = (web, worker) if platform else (worker, web)
                await figures.stays(lambda: _age(counted), not_age=lambda: _age(other))
            finally:
                _end(web)
        finally:
            _end(worker)


async def test_the_sdk_heartbeat_carries_the_process_start_and_deregisters_on_close(
        make_settings):
    async with Suite(make_settings(), components=("health",)) as suite, \
            httpx.AsyncClient(timeout=10) as http:

        async def listed() -> list[dict]:
            status = (await http.get(f"{suite.base}/status", headers=suite.headers())).json()
            return [s for s in status["services"] if s["name"] == "web_server"]

        # The process registers GAP seconds after it started: its uptime counts from its start.
        proc = _platform(suite, "web_server", after=GAP, port=8080, version="2.1",
                         interval=0.2, ttl_seconds=30)
        try:
            entry = await eventually(listed, within=GAP + 10)
            assert _age(proc) - STATUS_LAG <= entry[0]["uptime_seconds"] <= _age(proc)
            assert [(e["status"], e["pid"], e["port"], e["version"]) for e in entry] == [
                ("running", proc.pid, 8080, "2.1")]
            proc.stdin.close()
            # Off the loop: the health service it deregisters from runs on it.
            assert await asyncio.to_thread(proc.wait, 10) == 0
            assert await listed() == []
        finally:
            _end(proc)


def test_platform_services_must_name_services():
    with pytest.raises(ConfigError, match="BOTMON_PLATFORM_SERVICES"):
        MetricsSettings.from_env({"BOTMON_PLATFORM_SERVICES": " , "})
    assert MetricsSettings.from_env(
        {"BOTMON_PLATFORM_SERVICES": "web_server, worker"}).platform_services == (
        "web_server", "worker")

