"""The status list: the suite's services, self-registered services and the probed components."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import os
import socket
import time
from urllib.parse import urlsplit

import psutil

from botmon import __version__
from botmon.runtime.config import Settings
from botmon.runtime.errors import Unavailable
from services.health.prober import Prober, Snapshot
from services.health.probes.result import DEGRADED, HEALTHY, NOT_CONFIGURED, ProbeResult
from services.health.process_memory import ProcessMemory
from services.health.registry import Instance, Registry

__all__ = ["SUITE", "StatusBoard"]

log = logging.getLogger("botmon.health.status")

#: The suite's own services, listed first and always: "starting" until one registers,
#: "stopped" once every registration of it is gone.
SUITE = ("gateway", "health", "metrics", "alerts", "logs")

#: Probed component -> its name in the status list (CONTRACT.md §9).
COMPONENT_ENTRIES = {"database": "database", "cache": "cache", "llm": "llm_server"}

_ENTRY_STATUS = {HEALTHY: "running", DEGRADED: "degraded", NOT_CONFIGURED: "not_configured"}


def _port(address: str) -> int:
    port = address.rpartition(":")[2]
    return int(port) if port.isdecimal() else 0


class StatusBoard:
    """Builds the status list, and keeps this health replica registered alongside the others."""

    def __init__(self, settings: Settings, registry: Registry, prober: Prober, *,
                 instance_id: str, memory: ProcessMemory | None = None):
        self.settings = settings
        self.registry = registry
        self.prober = prober
        self.instance_id = instance_id
        self.memory = memory or ProcessMemory()
        # The process's own start: uptime counts from it, as for every registration.
        self.started = psutil.Process().create_time()
        self.port = 0
        self.interval = settings.heartbeat_interval
        self._task: asyncio.Task | None = None
        #: Suite services this replica has seen registered.
        self._seen: set[str] = set()

    def own_entry(self, now: float) -> Instance:
        return Instance(
            name="health", instance_id=self.instance_id, status="running", port=self.port,
            pid=os.getpid(), version=__version__, host=socket.gethostname(),
            start_time=self.started, ttl=max(3.0, 3 * self.interval), last_heartbeat=now,
            details={"registry": self.registry.kind, "probe_rounds": self.prober.rounds,
                     "watchers": self.prober.watcher_count})

    def start(self, port: int) -> None:
        """Register this replica every heartbeat interval (other replicas list it from Redis)."""
        self.port = port
        self._task = asyncio.create_task(self._beat(), name="health-self-heartbeat")

    async def _beat(self) -> None:
        task = asyncio.current_task()
        while True:
            try:
                await self.registry.heartbeat(self.own_entry(time.time()))
            except Unavailable as exc:
                log.warning("cannot register this health replica: %s", exc.message)
            # redis-py can swallow the cancellation stop() sends while a command is in
            # flight; the request is still counted.
            if task.cancelling():
                return
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
            try:
                await self.registry.deregister("health", self.instance_id)
            except Unavailable:
                pass

    async def entries(self, now: float) -> list[Instance]:
        """Suite services, then other registered services by name, then the components, as
        of ``now``; the memory of every local running process is read."""
        own = self.own_entry(now)
        try:
            registered = [i for i in await self.registry.instances(now)
                          if (i.name, i.instance_id) != ("health", self.instance_id)]
        except Unavailable as exc:
            registered = []
            own = dataclasses.replace(own, details={**own.details, "registry_error": exc.message})
        registered.append(own)
        registered = self.memory.measure(registered, now)
        registered.sort(key=lambda i: (i.name, i.instance_id))
        suite: list[Instance] = []
        for name in SUITE:
            replicas = [i for i in registered if i.name == name]
            if replicas:
                self._seen.add(name)
            suite += replicas or [Instance(
                name=name, instance_id="", status="stopped" if name in self._seen else "starting",
                port=_port(self.settings.addr(name)))]
        others = [i for i in registered if i.name not in SUITE]
        # The last round's results: the next round's end rebuilds the list anyway.
        snapshot = self.prober.snapshot or await self.prober.current()
        return suite + others + self._components(snapshot)

    def next_change(self, entries: list[Instance], now: float) -> float:
        """When ``entries`` change by the clock alone: a registration lapsing to "stopped",
        or a stopped one being dropped (inf when none will)."""
        changes = [self.registry.drop_time(e) if e.status == "stopped" else e.expire_time
                   for e in entries if e.instance_id and e.last_heartbeat is not None]
        return min((t for t in changes if t >= now), default=math.inf)

    def _components(self, snapshot: Snapshot) -> list[Instance]:
        urls = {"database": self.settings.probe_database_url,
                "cache": self.settings.probe_cache_url, "llm": self.settings.probe_llm_url}
        return [self._component(name, snapshot.results[component], urls[component])
                for component, name in COMPONENT_ENTRIES.items()
                if component in snapshot.results]

    @staticmethod
    def _component(name: str, result: ProbeResult, url: str | None) -> Instance:
        configured = result.status != NOT_CONFIGURED
        host = ""
        if url and configured:
            try:
                host = urlsplit(url).hostname or ""
            except ValueError:
                host = ""
        details = {"reason": result.reason} if result.reason else {}
        backend = getattr(result, "backend", "")
        if backend:
            details["backend"] = backend
        running = result.status in (HEALTHY, DEGRADED)
        return Instance(
            name=name, instance_id="", status=_ENTRY_STATUS.get(result.status, "stopped"),
            port=result.port, version=result.version, host=host,
            start_time=result.started_at if running else None, details=details,
            last_heartbeat=None,
            memory_used_mb=getattr(result, "memory_used_mb", None) if name == "cache"
            and running else None,
            model=getattr(result, "model", ""))
