"""Host figures sampled by psutil in the background, so a request never waits on one."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

__all__ = ["Collector", "SystemSample"]

log = logging.getLogger("botmon.metrics.collector")

GB = 1e9


@dataclass(frozen=True)
class SystemSample:
    """One sample of the host; sizes in bytes, percentages 0 to 100."""

    time: float
    period: float
    cpu_percent: float
    cores: int
    load_average: tuple[float, float, float]
    memory_total: int
    memory_available: int
    disk_path: str
    disk_total: int
    disk_used: int
    disk_free: int
    bytes_sent: int
    bytes_received: int
    packets_sent: int
    packets_received: int
    #: Unix seconds of the host's boot, since when its network counters count.
    boot_time: float

    @property
    def memory_used(self) -> int:
        return self.memory_total - self.memory_available

    @property
    def memory_percent(self) -> float:
        return 100.0 * self.memory_used / self.memory_total if self.memory_total else 0.0

    @property
    def disk_percent(self) -> float:
        # As df reports it: the root reserve is neither used nor free to users.
        usable = self.disk_used + self.disk_free
        return 100.0 * self.disk_used / usable if usable else 0.0


def existing_ancestor(path: Path) -> Path:
    """``path`` or its nearest existing parent, so a data dir not yet created still reports."""
    path = path.resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def take_sample(disk_path: Path, period: float) -> SystemSample:
    """Read every figure now; CPU use is over the time since the previous call."""
    mem = psutil.virtual_memory()
    disk = psutil.disk_usage(str(existing_ancestor(disk_path)))
    net = psutil.net_io_counters()
    return SystemSample(
        time=time.time(),
        period=period,
        cpu_percent=psutil.cpu_percent(interval=None),
        cores=psutil.cpu_count() or 1,
        load_average=tuple(psutil.getloadavg()),
        memory_total=mem.total,
        memory_available=mem.available,
        disk_path=str(disk_path),
        disk_total=disk.total,
        disk_used=disk.used,
        disk_free=disk.free,
        bytes_sent=net.bytes_sent if net else 0,
        bytes_received=net.bytes_recv if net else 0,
        packets_sent=net.packets_sent if net else 0,
        packets_received=net.packets_recv if net else 0,
        boot_time=psutil.boot_time(),
    )


class Collector:
    """Samples the host every ``interval`` seconds; ``latest`` is always a complete sample.

    Each new sample is announced to ``listeners`` at once (synchronously, in the
    event loop), so live streams send it the moment it exists.
    """

    def __init__(self, disk_path: Path, interval: float = 1.0):
        self.disk_path = disk_path
        self.interval = interval
        self.latest: SystemSample | None = None
        self.listeners: list[Callable[[SystemSample], None]] = []
        self._task: asyncio.Task | None = None

    def _announce(self, sample: SystemSample) -> None:
        for listener in self.listeners:
            try:
                listener(sample)
            except Exception:
                # A listener's bug must not stop the sampling everyone else relies on.
                log.exception("a sample listener failed")

    async def start(self) -> None:
        """Take a first sample (CPU over a short interval) and start sampling."""
        psutil.cpu_percent(interval=None)
        first = min(self.interval, 0.2)
        await asyncio.sleep(first)
        self.latest = await asyncio.to_thread(take_sample, self.disk_path, first)
        self._task = asyncio.create_task(self._run(), name="metrics-collector")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time() + self.interval
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            previous = self.latest.time if self.latest else time.time() - self.interval
            try:
                self.latest = await asyncio.to_thread(
                    take_sample, self.disk_path, max(time.time() - previous, 1e-3))
            except OSError as exc:
                log.warning("sampling failed", extra={"error": str(exc)})
            else:
                self._announce(self.latest)
            next_at += self.interval
            # After a long stall, resume the cadence from now instead of catching up.
            if next_at < loop.time():
                next_at = loop.time() + self.interval

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
