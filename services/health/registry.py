"""Services that registered themselves by heartbeat; kept in memory or in Redis."""

from __future__ import annotations

import abc
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from botmon.runtime.errors import InvalidArgument

__all__ = ["DEFAULT_TTL", "Instance", "MemoryRegistry", "Registry", "RESERVED_NAMES"]

DEFAULT_TTL = 30
MAX_TTL = 3600
#: Names the status list gives to the probed components.
RESERVED_NAMES = ("database", "cache", "llm_server")
STATUSES = ("running", "degraded")


@dataclass(frozen=True)
class Instance:
    """One replica of a service, as its last heartbeat described it; times are Unix seconds."""

    name: str
    instance_id: str
    status: str = "running"
    port: int = 0
    pid: int = 0
    version: str = ""
    host: str = ""
    start_time: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    ttl: float = DEFAULT_TTL
    last_heartbeat: float | None = None
    #: When its supervisor reported it dead (Deregister with retain_as_stopped).
    stopped_at: float | None = None
    #: Megabytes: Redis memory for the "cache" entry of the status list, the process's
    #: resident memory for a running instance on this host; None when unknown.
    memory_used_mb: float | None = None
    #: Model served, for the "llm_server" entry of the status list.
    model: str = ""

    @property
    def expire_time(self) -> float:
        """When the registration lapses unless renewed (at once when reported dead)."""
        if self.stopped_at is not None:
            return min(self.stopped_at, (self.last_heartbeat or 0.0) + self.ttl)
        return (self.last_heartbeat or 0.0) + self.ttl

    def as_of(self, now: float) -> Instance:
        """This instance as listed at ``now``: "stopped" once reported dead or lapsed."""
        if self.stopped_at is not None or (self.last_heartbeat is not None
                                           and now > self.expire_time):
            return dataclasses.replace(self, status="stopped")
        return self


def validated(instance: Instance) -> Instance:
    """``instance`` with defaults applied; InvalidArgument names the first bad field."""
    if not instance.name.strip():
        raise InvalidArgument("name is required: the service's name, e.g. \"web_server\"",
                              field="name")
    if len(instance.name) > 128:
        raise InvalidArgument(f"name must be at most 128 characters, got {len(instance.name)}",
                              field="name")
    if instance.name in RESERVED_NAMES:
        raise InvalidArgument(f"name {instance.name!r} is reserved for the probed component; "
                              "register under another name", field="name")
    if not instance.instance_id.strip():
        raise InvalidArgument("instance_id is required: an id stable for the life of the "
                              "process, distinct between replicas", field="instance_id")
    if len(instance.instance_id) > 256:
        raise InvalidArgument("instance_id must be at most 256 characters", field="instance_id")
    ttl = instance.ttl or DEFAULT_TTL
    if not 1 <= ttl <= MAX_TTL:
        raise InvalidArgument(f"ttl_seconds must be between 1 and {MAX_TTL}, got {ttl:g}",
                              field="ttl_seconds")
    status = instance.status or "running"
    if status not in STATUSES:
        raise InvalidArgument(f"status must be one of {', '.join(STATUSES)}, got {status!r}",
                              field="status")
    if not 0 <= instance.port <= 65535:
        raise InvalidArgument(f"port must be between 0 and 65535, got {instance.port}",
                              field="port")
    if instance.pid < 0:
        raise InvalidArgument(f"pid must not be negative, got {instance.pid}", field="pid")
    return dataclasses.replace(instance, ttl=ttl, status=status)


class Registry(abc.ABC):
    """Registrations by (name, instance_id); a lapsed one is listed as stopped for
    ``retention`` TTLs after its last heartbeat, then dropped."""

    #: Where registrations are kept, shown in the status list.
    kind = ""

    def __init__(self, *, retention: float):
        self.retention = retention

    async def heartbeat(self, instance: Instance, now: float | None = None) -> Instance:
        """Validate and store ``instance``; returns it as stored."""
        instance = validated(instance)
        return await self._put(instance, time.time() if now is None else now)

    def drop_time(self, instance: Instance) -> float:
        """When a registration is dropped: ``retention`` TTLs after its last heartbeat,
        or after it was reported dead."""
        since = instance.stopped_at if instance.stopped_at is not None else instance.last_heartbeat
        return (since or 0.0) + instance.ttl * self.retention

    @abc.abstractmethod
    async def _put(self, instance: Instance, now: float) -> Instance: ...

    async def deregister(self, name: str, instance_id: str, *, retain: bool = False,
                         now: float | None = None) -> bool:
        """Remove a registration, or with ``retain`` list it as stopped from ``now`` on
        until it is dropped; False when there was none."""
        if retain:
            return await self._mark_stopped(name, instance_id, time.time() if now is None else now)
        return await self._remove(name, instance_id)

    @abc.abstractmethod
    async def _remove(self, name: str, instance_id: str) -> bool: ...

    @abc.abstractmethod
    async def _mark_stopped(self, name: str, instance_id: str, now: float) -> bool: ...

    @abc.abstractmethod
    async def instances(self, now: float | None = None) -> list[Instance]:
        """Every registration not yet dropped, lapsed ones with status "stopped"."""

    @abc.abstractmethod
    async def version(self) -> int:
        """A number that every heartbeat and deregistration changes (through any replica
        sharing the registry); lapses and drops, which follow from the clock, do not."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the registry's connections."""


class MemoryRegistry(Registry):
    """Registrations of this process only: right for a single health replica."""

    kind = "memory"

    def __init__(self, *, retention: float):
        super().__init__(retention=retention)
        self._entries: dict[tuple[str, str], Instance] = {}
        self._version = 0

    async def _put(self, instance: Instance, now: float) -> Instance:
        key = (instance.name, instance.instance_id)
        previous = self._entries.get(key)
        start = instance.start_time or (previous.start_time if previous else None) or now
        stored = dataclasses.replace(instance, start_time=start, last_heartbeat=now,
                                     stopped_at=None)
        self._entries[key] = stored
        self._version += 1
        return stored

    async def _remove(self, name: str, instance_id: str) -> bool:
        self._version += 1
        return self._entries.pop((name, instance_id), None) is not None

    async def _mark_stopped(self, name: str, instance_id: str, now: float) -> bool:
        entry = self._entries.get((name, instance_id))
        if entry is None:
            return False
        if entry.stopped_at is None:
            self._entries[(name, instance_id)] = dataclasses.replace(entry, stopped_at=now)
            self._version += 1
        return True

    async def instances(self, now: float | None = None) -> list[Instance]:
        now = time.time() if now is None else now
        for key in [k for k, v in self._entries.items() if now >= self.drop_time(v)]:
            del self._entries[key]
        return [entry.as_of(now) for entry in self._entries.values()]

    async def version(self) -> int:
        return self._version

    async def close(self) -> None:
        self._entries.clear()
