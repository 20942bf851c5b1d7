"""The export component's health, from the ``export:<destination>`` entries of the status list.

The export service lists each destination it sends to, with how long its
sends have been failing; a destination failing for longer than two export
intervals degrades the component. Never unhealthy: monitoring works on
without its exports.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from botmon.runtime.errors import Unavailable
from services.health.probes.probe import elapsed_ms
from services.health.probes.result import DEGRADED, HEALTHY, NOT_CONFIGURED, ProbeResult
from services.health.registry import Registry

__all__ = ["PREFIX", "ExportProbe", "ExportResult"]

PREFIX = "export:"


@dataclass(frozen=True)
class ExportResult(ProbeResult):
    destinations: int = 0
    failing_destinations: int = 0


class ExportProbe:
    """Reads the registry; no call to the export service is needed."""

    result_type = ExportResult
    port = 0

    def __init__(self, registry: Registry):
        self.registry = registry

    async def check(self) -> ExportResult:
        start = time.perf_counter()
        try:
            entries = [i for i in await self.registry.instances() if i.name.startswith(PREFIX)]
        except Unavailable as exc:
            return ExportResult(status=DEGRADED, reason=f"status list unreadable: {exc.message}")
        latency = elapsed_ms(start)
        if not entries:
            return ExportResult(status=NOT_CONFIGURED, latency_ms=latency,
                                reason="no export destination is configured")
        failing = []
        for entry in entries:
            name = entry.name.removeprefix(PREFIX)
            if entry.status == "stopped":
                failing.append(f"{name}: no export replica reports it")
                continue
            seconds = float(entry.details.get("failing_seconds") or 0)
            if seconds > 2 * float(entry.details.get("interval_seconds") or 60):
                error = entry.details.get("last_error") or "sends fail"
                failing.append(f"{name}: failing for {seconds:.0f}s: {error}")
        return ExportResult(status=DEGRADED if failing else HEALTHY, reason="; ".join(failing),
                            latency_ms=latency, destinations=len(entries),
                            failing_destinations=len(failing))

    async def close(self) -> None:
        pass
