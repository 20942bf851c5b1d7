"""The supervisor's restart and stop policy, with real child processes."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import io
import sys
import time
from collections.abc import AsyncIterator

import psutil

from botmon.runtime.supervisor import (
    Component,
    RestartPolicy,
    Supervisor,
    grpc_probe,
    http_probe,
)
from tests.conftest import free_port

FAST = RestartPolicy(initial_backoff=0.05, max_backoff=0.2, max_start_failures=3,
                     probe_interval=0.05, grace=1.0)

#: How often a fork() of this process ran the fork handlers that gRPC registers too.
_forks = 0


@ctypes.CFUNCTYPE(None)
def _count_fork() -> None:
    global _forks
    _forks += 1


# pthread_atfork is glibc's __register_atfork; the handler lives as long as the process.
ctypes.CDLL(None).__register_atfork(_count_fork, None, None, None)


@contextlib.asynccontextmanager
async def supervising(supervisor: Supervisor) -> AsyncIterator[asyncio.Task]:
    """Run ``supervisor``; on the way out, whatever happened, stop it and kill its children."""
    running = asyncio.create_task(supervisor.run())
    await asyncio.sleep(0)
    try:
        yield running
    finally:
        if not running.done():
            supervisor.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(running), 15)
        for proc in supervisor.processes.values():
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


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
    async with supervising(supervisor) as running:
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
    async with supervising(supervisor) as running:

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
    async with supervising(supervisor) as running:
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


async def test_children_start_without_fork_handlers_and_learn_their_identity():
    """A gRPC-using supervisor must not fork(): gRPC's fork handlers (the ones this test
    counts) run on fork() and can crash the child while gRPC threads are busy."""
    out, port = io.StringIO(), free_port()
    code = ("import asyncio, os, sys, grpc\n"
            "from grpc_health.v1 import health, health_pb2_grpc\n"
            "async def main():\n"
            "    server = grpc.aio.server()\n"
            "    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)\n"
            f"    server.add_insecure_port('127.0.0.1:{port}')\n"
            "    print(os.environ['BOTMON_SUPERVISOR_PID'], os.environ['BOTMON_INSTANCE_ID'],\n"
            "          file=sys.stderr)\n"
            "    await server.start()\n"
            "    await server.wait_for_termination()\n"
            "asyncio.run(main())\n")
    exits: list[tuple[str, str]] = []

    async def on_exit(component: Component, instance_id: str) -> None:
        exits.append((component.name, instance_id))

    supervisor = Supervisor([Component("svc", [sys.executable, "-c", code], f"127.0.0.1:{port}",
                                       grpc_probe(f"127.0.0.1:{port}", timeout=0.5))],
                            FAST, out=out, on_exit=on_exit)
    forks_before = _forks
    instance_ids = []
    async with supervising(supervisor) as running:
        for n in range(1, 4):
            deadline = time.monotonic() + 30
            while out.getvalue().count("svc ready on") < n:
                assert time.monotonic() < deadline and not running.done(), out.getvalue()
                await asyncio.sleep(0.05)
            instance_ids.append(supervisor.instance_ids["svc"])
            if n < 3:
                psutil.Process(supervisor.processes["svc"].pid).kill()
        supervisor.stop()
        assert await asyncio.wait_for(running, 10) == 0
    assert "before it was ready" not in out.getvalue()
    assert _forks == forks_before, "a child was started with fork(), running fork handlers"
    assert len(set(instance_ids)) == 3
    # Each child that died was reported with the instance id it had been given; a child
    # stopped by the supervisor is not.
    assert exits == [("svc", instance_ids[0]), ("svc", instance_ids[1])]
