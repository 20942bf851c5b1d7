"""Supervision of the suite's child processes: start, wait for ready, restart, stop.

Each component runs as its own OS process. The supervisor reports each one
once it answers its readiness probe, restarts a crashed child with
exponential backoff (reset once the child has stayed up ``stable_after``
seconds), gives up when a child keeps dying before it is ready, and on
SIGTERM/SIGINT stops the children stage by stage: SIGTERM, up to ``grace``
seconds to exit, then SIGKILL for what is left.

Children are started without ``preexec_fn``, so CPython uses vfork() and no fork
handlers run: forking this process, whose gRPC threads serve the probes, could crash
the child. Each child learns the supervisor's pid (``BOTMON_SUPERVISOR_PID``) to die
with it, and its instance id (``BOTMON_INSTANCE_ID``) so that its death can be
reported on its behalf.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

import aiohttp
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

__all__ = ["Component", "RestartPolicy", "Supervisor", "grpc_probe", "http_probe"]

#: A readiness probe: True when the component is ready, False (or an exception) when not.
Probe = Callable[[], Awaitable[bool]]

#: Called with a component and its child's instance id when that child has died.
ExitHook = Callable[["Component", str], Awaitable[None]]

#: Exit code a botmon process uses for a bad setting; restarting cannot fix it.
CONFIG_ERROR = 2


@dataclass(frozen=True)
class Component:
    """One supervised process: its command, where it listens and how to tell it is ready."""

    name: str
    command: Sequence[str]
    address: str
    probe: Probe
    #: Stages stop in ascending order, each after the previous one has exited, so that
    #: the edge drains before the services it calls and those before the registry.
    stop_stage: int = 0


@dataclass(frozen=True)
class RestartPolicy:
    """How children are restarted, waited for and stopped (seconds)."""

    initial_backoff: float = 0.5
    max_backoff: float = 30.0
    stable_after: float = 60.0
    max_start_failures: int = 5
    ready_timeout: float = 60.0
    probe_interval: float = 0.2
    grace: float = 10.0  # per stop stage


def grpc_probe(target: str, timeout: float = 1.0,
               credentials: grpc.ChannelCredentials | None = None) -> Probe:
    """A probe that asks ``grpc.health.v1.Health/Check`` at ``target`` for SERVING."""

    def open_channel() -> grpc.aio.Channel:
        if credentials is None:
            return grpc.aio.insecure_channel(target)
        return grpc.aio.secure_channel(target, credentials)

    async def probe() -> bool:
        # A fresh channel per attempt: a long-lived one would sit in reconnect backoff.
        async with open_channel() as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        return reply.status == health_pb2.HealthCheckResponse.SERVING

    return probe


def http_probe(url: str, timeout: float = 1.0, context: ssl.SSLContext | None = None) -> Probe:
    """A probe that wants a 2xx answer to ``GET url`` (verified by ``context`` for https)."""

    async def probe() -> bool:
        client_timeout = aiohttp.ClientTimeout(total=timeout)
        async with aiohttp.ClientSession(timeout=client_timeout) as session, \
                session.get(url, ssl=context or True) as response:
            return 200 <= response.status < 300

    return probe


class Supervisor:
    """Runs ``components`` as child processes until stopped; ``run()`` returns the exit code."""

    def __init__(self, components: Sequence[Component], policy: RestartPolicy | None = None, *,
                 env: dict[str, str] | None = None, out: TextIO | None = None,
                 on_exit: ExitHook | None = None):
        self.components = list(components)
        self.policy = policy or RestartPolicy()
        self.env = env
        self.out = out or sys.stdout
        self.on_exit = on_exit
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        #: The instance id given to each component's current child.
        self.instance_ids: dict[str, str] = {}
        self._reports: set[asyncio.Task] = set()
        self.exit_code = 0
        self._stopping: asyncio.Event | None = None
        self._ready: set[str] = set()
        self._announced = False

    def say(self, line: str) -> None:
        print(f"botmon: {line}", file=self.out, flush=True)

    async def run(self) -> int:
        """Supervise until SIGTERM/SIGINT or a fatal start failure, then stop every child."""
        self._stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            keepers = [asyncio.create_task(self._keep(c), name=f"keep-{c.name}")
                       for c in self.components]
            await self._stopping.wait()
            # Every wait in a keeper ends on stop, so this is quick; afterwards no
            # keeper can spawn a child that the termination below would miss.
            await asyncio.gather(*keepers, return_exceptions=True)
            await self._terminate_all()
            # Reports still waiting (e.g. for a health service that is stopping) are moot.
            for report in self._reports:
                report.cancel()
            await asyncio.gather(*self._reports, return_exceptions=True)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        self.say(f"stopped (exit code {self.exit_code})")
        return self.exit_code

    def stop(self, exit_code: int = 0) -> None:
        """Begin stopping every child; the first non-zero code given wins."""
        if not self.exit_code:
            self.exit_code = exit_code
        assert self._stopping is not None
        self._stopping.set()

    def _on_signal(self, sig: int) -> None:
        assert self._stopping is not None
        if self._stopping.is_set():
            # A second Ctrl-C means "now": skip the rest of the grace period.
            self.say(f"{signal.Signals(sig).name} again: killing every child")
            for proc in self.processes.values():
                _send(proc, signal.SIGKILL)
            return
        self.say(f"{signal.Signals(sig).name}: stopping every component "
                 f"(grace {self.policy.grace:g}s)")
        self.stop(0)

    async def _keep(self, component: Component) -> None:
        """Start ``component``, wait for it to be ready, restart it whenever it exits."""
        assert self._stopping is not None
        policy = self.policy
        backoff = policy.initial_backoff
        start_failures = 0
        while not self._stopping.is_set():
            try:
                proc = await self._spawn(component)
            except OSError as exc:
                self.say(f"cannot start {component.name} ({' '.join(component.command)}): {exc}")
                self.stop(1)
                return
            ready_at = await self._await_ready(component, proc)
            rc = await self._wait_exit(proc)
            if rc is None or self._stopping.is_set():
                return
            self.processes.pop(component.name, None)
            self._report_exit(component)
            if ready_at is None:
                if rc == CONFIG_ERROR:
                    self.say(f"{component.name} exited with a configuration error (see above)")
                    self.stop(CONFIG_ERROR)
                    return
                start_failures += 1
                self.say(f"{component.name} {_exit_reason(rc)} before it was ready "
                         f"({start_failures}/{policy.max_start_failures} start failures)")
                if start_failures >= policy.max_start_failures:
                    self.say(f"{component.name} keeps crashing at start; giving up")
                    self.stop(1)
                    return
            else:
                start_failures = 0
                uptime = time.monotonic() - ready_at
                if uptime >= policy.stable_after:
                    backoff = policy.initial_backoff
                self.say(f"{component.name} {_exit_reason(rc)} after {uptime:.1f}s; "
                         f"restarting in {backoff:g}s")
            if await self._sleep(backoff):
                return
            backoff = min(backoff * 2, policy.max_backoff)

    async def _spawn(self, component: Component) -> asyncio.subprocess.Process:
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        instance_id = f"{socket.gethostname()}-{component.name}-{uuid.uuid4().hex[:8]}"
        env.update(BOTMON_SUPERVISOR_PID=str(os.getpid()), BOTMON_INSTANCE_ID=instance_id)
        # Own process group: the terminal's Ctrl-C reaches only the supervisor, which
        # then stops the children in order instead of all of them racing to exit.
        # No preexec_fn: with one CPython would fork() instead of vfork().
        proc = await asyncio.create_subprocess_exec(
            *component.command, env=env, stdin=asyncio.subprocess.DEVNULL, process_group=0)
        self.processes[component.name] = proc
        self.instance_ids[component.name] = instance_id
        return proc

    def _report_exit(self, component: Component) -> None:
        """Tell ``on_exit`` that the child died, beside the restart (which it must not delay)."""
        if self.on_exit is None:
            return
        task = asyncio.create_task(self._call_on_exit(component,
                                                      self.instance_ids[component.name]))
        self._reports.add(task)
        task.add_done_callback(self._reports.discard)

    async def _call_on_exit(self, component: Component, instance_id: str) -> None:
        assert self.on_exit is not None
        try:
            await self.on_exit(component, instance_id)
        except Exception as exc:
            self.say(f"could not report the exit of {component.name} ({instance_id}): {exc}")

    async def _await_ready(self, component: Component,
                           proc: asyncio.subprocess.Process) -> float | None:
        """Poll the probe until it passes (returns the time), or the child exits / we stop."""
        assert self._stopping is not None
        started = time.monotonic()
        warned = False
        while proc.returncode is None and not self._stopping.is_set():
            try:
                ok = await component.probe()
            except Exception:
                ok = False
            if ok:
                self._ready.add(component.name)
                self.say(f"{component.name} ready on {component.address} (pid {proc.pid})")
                if not self._announced and self._ready == {c.name for c in self.components}:
                    self._announced = True
                    self.say(f"all {len(self.components)} components ready; "
                             "Ctrl-C or SIGTERM stops them")
                return time.monotonic()
            if not warned and time.monotonic() - started > self.policy.ready_timeout:
                warned = True
                self.say(f"{component.name} (pid {proc.pid}) not ready after "
                         f"{self.policy.ready_timeout:g}s; still waiting")
            await self._sleep(self.policy.probe_interval)
        return None

    async def _wait_exit(self, proc: asyncio.subprocess.Process) -> int | None:
        """The child's exit code, or None when the supervisor is stopping first."""
        assert self._stopping is not None
        exited = asyncio.ensure_future(proc.wait())
        stopping = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if exited.done():
            return exited.result()
        exited.cancel()
        return None

    async def _sleep(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True if the supervisor began stopping meanwhile."""
        assert self._stopping is not None
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def _terminate_all(self) -> None:
        """Stop the children stage by stage (lowest ``stop_stage`` first), then reap them."""
        for stage in sorted({c.stop_stage for c in self.components}):
            names = [c.name for c in self.components if c.stop_stage == stage]
            await self._terminate([self.processes[n] for n in names if n in self.processes])

    async def _terminate(self, procs: list[asyncio.subprocess.Process]) -> None:
        """SIGTERM ``procs``, wait ``grace`` seconds, SIGKILL those still running."""
        procs = [p for p in procs if p.returncode is None]
        for proc in procs:
            _send(proc, signal.SIGTERM)
        waits = [asyncio.ensure_future(p.wait()) for p in procs]
        if not waits:
            return
        _, pending = await asyncio.wait(waits, timeout=self.policy.grace)
        if pending:
            late = [p for p in procs if p.returncode is None]
            self.say(f"pid {', '.join(str(p.pid) for p in late)} still running after "
                     f"{self.policy.grace:g}s; sending SIGKILL")
            for proc in late:
                _send(proc, signal.SIGKILL)
            await asyncio.wait(pending)


def _exit_reason(rc: int) -> str:
    if rc < 0:
        try:
            return f"was killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"was killed by signal {-rc}"
    return f"exited with code {rc}"


def _send(proc: asyncio.subprocess.Process, sig: int) -> None:
    try:
        proc.send_signal(sig)
    except ProcessLookupError:
        pass
