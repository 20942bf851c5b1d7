"""The supervisor's restart and stop policy, with real child processes."""

from __future__ import annotations

import asyncio
import io
import sys
import time

import psutil

from botmon.runtime.supervisor import Component, RestartPolicy, Supervisor, http_probe
from tests.conftest import free_port

FAST = RestartPolicy(initial_backoff=0.05, max_backoff=0.2, max_start_failures=3,
                     probe_interval=0.05, grace=1.0)


def _http_server(port: int, *, ignore_sigterm: bool = False) -> list[str]:
    code = ("import signal, http.server\n"
            + ("signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" if ignore_sigterm else "")
            + f"http.server.HTTPServer(('127.0.0.1', {port}), "
              "http.server.SimpleHTTPRequestHandler).serve_forever()\n")
    return [sys.executable, "-c", code]


def _component(name: str, command: list[str], port: int) -> Component:
    return Component(name, command, f"127.0.0.1:{port}",
                     http_probe(f"http://127.0.0.1:{port}/", timeout=0.5))


async def test_a_child_that_keeps_crashing_at_start_gives_exit_1():
    out = io.StringIO()
    crash = Component("crash", [sys.executable, "-c", "raise SystemExit(3)"], "-",
                      http_probe(f"http://127.0.0.1:{free_port()}/"))
    code = await asyncio.wait_for(Supervisor([crash], FAST, out=out).run(), 30)
    assert code == 1
    assert out.getvalue().count("crash exited with code 3 before it was ready") == 3
    assert "crash keeps crashing at start; giving up" in out.getvalue()


async def test_a_configuration_error_is_not_retried():
    out = io.StringIO()
    bad = Component("bad", [sys.executable, "-c", "raise SystemExit(2)"], "-",
                    http_probe(f"http://127.0.0.1:{free_port()}/"))
    code = await asyncio.wait_for(Supervisor([bad], FAST, out=out).run(), 30)
    assert code == 2
    assert out.getvalue().count("bad exited with a configuration error") == 1


async def test_stop_escalates_to_sigkill_after_the_grace_period():
    out = io.StringIO()
    port = free_port()
    stubborn = _component("stubborn", _http_server(port, ignore_sigterm=True), port)
    supervisor = Supervisor([stubborn], FAST, out=out)
    running = asyncio.create_task(supervisor.run())
    deadline = time.monotonic() + 30
    while "all 1 components ready" not in out.getvalue():
        assert time.monotonic() < deadline and not running.done(), out.getvalue()
        await asyncio.sleep(0.05)
    pid = supervisor.processes["stubborn"].pid
    started = time.monotonic()
    supervisor.stop()
    assert await asyncio.wait_for(running, 10) == 0
    assert FAST.grace <= time.monotonic() - started < FAST.grace + 5
    assert "still running after 1s; sending SIGKILL" in out.getvalue()
    assert not psutil.pid_exists(pid)


async def test_restart_backoff_grows_and_resets_after_a_stable_run():
    out = io.StringIO()
    port = free_port()
    policy = RestartPolicy(initial_backoff=0.1, max_backoff=0.4, stable_after=1.0,
                           probe_interval=0.05, grace=1.0)
    supervisor = Supervisor([_component("web", _http_server(port), port)], policy, out=out)
    running = asyncio.create_task(supervisor.run())

    async def ready_count(n: int) -> int:
        deadline = time.monotonic() + 30
        while out.getvalue().count("web ready on") < n:
            assert time.monotonic() < deadline and not running.done(), out.getvalue()
            await asyncio.sleep(0.05)
        return supervisor.processes["web"].pid

    pid = await ready_count(1)
    for n, delay in ((2, "0.1"), (3, "0.2"), (4, "0.4"), (5, "0.4")):
        psutil.Process(pid).kill()
        pid = await ready_count(n)
        assert out.getvalue().rstrip().splitlines()[-2].endswith(f"restarting in {delay}s")
    await asyncio.sleep(policy.stable_after)
    psutil.Process(pid).kill()
    await ready_count(6)
    assert out.getvalue().rstrip().splitlines()[-2].endswith("restarting in 0.1s")
    supervisor.stop()
    assert await asyncio.wait_for(running, 10) == 0


async def test_a_command_that_cannot_start_gives_exit_1():
    out = io.StringIO()
    missing = Component("missing", ["/nonexistent/botmon-component"], "-",
                        http_probe(f"http://127.0.0.1:{free_port()}/"))
    assert await asyncio.wait_for(Supervisor([missing], FAST, out=out).run(), 30) == 1
    assert "cannot start missing" in out.getvalue()


async def test_stages_stop_in_order():
    out = io.StringIO()
    first, second = free_port(), free_port()
    supervisor = Supervisor([
        _component("edge", _http_server(first, ignore_sigterm=True), first),
        Component("backend", _http_server(second), f"127.0.0.1:{second}",
                  http_probe(f"http://127.0.0.1:{second}/", timeout=0.5), stop_stage=1),
    ], FAST, out=out)
    running = asyncio.create_task(supervisor.run())
    deadline = time.monotonic() + 30
    while "all 2 components ready" not in out.getvalue():
        assert time.monotonic() < deadline and not running.done(), out.getvalue()
        await asyncio.sleep(0.05)
    edge, backend = supervisor.processes["edge"], supervisor.processes["backend"]
    stopped = time.monotonic()
    supervisor.stop()
    await backend.wait()
    # The backend got SIGTERM only once the edge had been killed after its grace period.
    assert time.monotonic() - stopped >= FAST.grace
    assert edge.returncode == -9 and backend.returncode == -15
    assert await asyncio.wait_for(running, 10) == 0
