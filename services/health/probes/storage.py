"""Storage probe: space of the filesystem that holds the suite's data."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import psutil

from services.health.probes.probe import elapsed_ms
from services.health.probes.result import DEGRADED, HEALTHY, UNHEALTHY, StorageResult

__all__ = ["StorageProbe"]

GB = 1e9


class StorageProbe:
    """Reports psutil's figures of ``path``'s filesystem; free = available to unprivileged users."""

    port = 0
    result_type = StorageResult

    def __init__(self, path: Path, *, degraded_percent: float, unhealthy_percent: float):
        self.path = path
        self.degraded_percent = degraded_percent
        self.unhealthy_percent = unhealthy_percent

    async def check(self) -> StorageResult:
        start = time.perf_counter()
        # statvfs can hang on a network filesystem, so it runs off the event loop.
        usage = await asyncio.to_thread(psutil.disk_usage, str(self.path))
        latency = elapsed_ms(start)
        free_percent = usage.free / usage.total * 100 if usage.total else 0.0
        status, reason = HEALTHY, ""
        if free_percent < self.unhealthy_percent:
            status = UNHEALTHY
        elif free_percent < self.degraded_percent:
            status = DEGRADED
        if status != HEALTHY:
            reason = f"{free_percent:.1f}% of {usage.total / GB:.1f} GB free"
        return StorageResult(
            status=status, reason=reason, latency_ms=latency, path=str(self.path),
            available_gb=round(usage.free / GB, 3), used_gb=round(usage.used / GB, 3),
            total_gb=round(usage.total / GB, 3))

    async def close(self) -> None:
        pass
