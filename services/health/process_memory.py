"""Resident memory of registered instances' processes, read with psutil on this host."""

from __future__ import annotations

import dataclasses
import socket

import psutil

from services.health.registry import Instance

__all__ = ["ProcessMemory"]

#: How much later than its registered start a process may have started and still be the
#: instance's: psutil derives a start from the boot time in whole seconds, and an
#: instance that sends no start time is registered at its first heartbeat.
START_SLACK = 1.0

_LIVE = ("running", "degraded")


class ProcessMemory:
    """Fills ``memory_used_mb`` of the running instances whose process this host can see.

    An instance on another host is left unknown (its pid means nothing here), and so is
    one whose pid now belongs to a process that started after the instance did.
    """

    def __init__(self, host: str | None = None):
        self.host = host or socket.gethostname()
        self._processes: dict[int, psutil.Process] = {}

    def measure(self, instances: list[Instance]) -> list[Instance]:
        """``instances`` with the memory of each local live process filled in."""
        seen: dict[int, psutil.Process] = {}
        measured = []
        for instance in instances:
            megabytes = self._megabytes(instance, seen)
            measured.append(dataclasses.replace(instance, memory_used_mb=megabytes)
                            if megabytes is not None else instance)
        # Only processes still registered are kept for the next round.
        self._processes = seen
        return measured

    def _megabytes(self, instance: Instance, seen: dict[int, psutil.Process]) -> float | None:
        if instance.status not in _LIVE or instance.pid <= 0 or instance.host != self.host:
            return None
        try:
            process = seen.get(instance.pid) or self._processes.get(instance.pid)
            if process is None or not process.is_running():
                process = psutil.Process(instance.pid)
            seen[instance.pid] = process
            if instance.start_time is not None and \
                    process.create_time() > instance.start_time + START_SLACK:
                return None
            return round(process.memory_info().rss / 1e6, 3)
        except psutil.Error:
            return None
