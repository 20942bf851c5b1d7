"""CPU use of groups of processes over a window, from psutil's cumulative CPU times."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import psutil

__all__ = ["CpuReading", "percent_of_core", "read_cpu"]


@dataclass(frozen=True)
class CpuReading:
    """Cumulative user+system CPU seconds per process id, at one wall-clock moment."""

    at: float
    seconds: dict[int, float]


def read_cpu(pids: Iterable[int]) -> CpuReading:
    """The CPU seconds each live process in ``pids`` has used so far."""
    seconds: dict[int, float] = {}
    for pid in set(pids):
        try:
            times = psutil.Process(pid).cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        seconds[pid] = times.user + times.system
    return CpuReading(time.monotonic(), seconds)


def percent_of_core(before: CpuReading, after: CpuReading,
                    groups: Mapping[str, Iterable[int]]) -> dict[str, float]:
    """Each group's CPU use between the readings, in % of one core.

    A process first seen in ``after`` counts from zero (it started inside the
    window); one gone by ``after`` counts nothing, as its last use is unknown.
    """
    wall = after.at - before.at
    usage: dict[str, float] = {}
    for name, pids in groups.items():
        used = sum(after.seconds[pid] - before.seconds.get(pid, 0.0)
                   for pid in set(pids) if pid in after.seconds)
        usage[name] = 100.0 * used / wall if wall > 0 else 0.0
    return usage
