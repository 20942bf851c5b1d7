"""Resident memory of registered instances' processes, read with psutil on this host."""

from __future__ import annotations

import dataclasses
import socket
from dataclasses import dataclass

import psutil

from botmon.runtime.debug import rss_mb
from services.health.registry import Instance

__all__ = ["ProcessMemory"]

#: How much later than its registered start a process may have started and still be the
#: instance's: psutil derives a start from the boot time in whole seconds, and an
#: instance that sends no start time is registered at its first heartbeat.
START_SLACK = 1.0

_LIVE = ("running", "degraded")


@dataclass(frozen=True)
class _Sample:
    #: When the process started (Unix seconds), as psutil computes it.
    created: float
    megabytes: float
    taken: float


class ProcessMemory:
    """Fills ``memory_used_mb`` of the running instances whose process this host can see.

    An instance on another host is left unknown (its pid means nothing here), and so is
    one whose pid now belongs to a process that started after the instance did. A
    process is read at most once per ``max_age`` seconds, however often the list is built.
    """

    def __init__(self, host: str | None = None, *, max_age: float = 1.0):
        self.host = host or socket.gethostname()
        self.max_age = max_age
        self._samples: dict[int, _Sample] = {}

    def measure(self, instances: list[Instance], now: float) -> list[Instance]:
        """``instances`` with the memory of each local live process filled in."""
        seen: dict[int, _Sample] = {}
        measured = []
        for instance in instances:
            megabytes = self._megabytes(instance, now, seen)
            measured.append(dataclasses.replace(instance, memory_used_mb=megabytes)
                            if megabytes is not None else instance)
        # Only processes still registered are kept for the next build.
        self._samples = seen
        return measured

    def _megabytes(self, instance: Instance, now: float,
                   seen: dict[int, _Sample]) -> float | None:
        if instance.status not in _LIVE or instance.pid <= 0 or instance.host != self.host:
            return None
        sample = seen.get(instance.pid) or self._samples.get(instance.pid)
        if sample is None or now - sample.taken >= self.max_age:
            sample = self._sample(instance.pid, now)
            if sample is None:
                return None
        seen[instance.pid] = sample
        if instance.start_time is not None and sample.created > instance.start_time + START_SLACK:
            return None
        return sample.megabytes

    @staticmethod
    def _sample(pid: int, now: float) -> _Sample | None:
        # A reused pid is told by its start (see _megabytes), not by a kept Process object.
        try:
            process = psutil.Process(pid)
            return _Sample(process.create_time(), rss_mb(process), now)
        except psutil.Error:
            return None
