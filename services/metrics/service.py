"""The metrics service's parts (collector, store, ingest, compaction, fan-out, live streams)
and their lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from botmon.runtime.channels import Backends
from botmon.runtime.config import Settings
from services.metrics.buckets import Batch
from services.metrics.collector import Collector
from services.metrics.config import MetricsSettings
from services.metrics.error_source import ErrorSource
from services.metrics.events import EventRules
from services.metrics.fanout import Fanout, default_channel
from services.metrics.ingest import Ingestor
from services.metrics.snapshot import Snapshot
from services.metrics.store import Retention, open_store
from services.metrics.stream import StreamHub
from services.metrics.uptime import Uptime

__all__ = ["Metrics"]

log = logging.getLogger("botmon.metrics")


class Metrics:
    """Everything the servicer reads from; ``start()`` after the gRPC server is built."""

    def __init__(self, settings: Settings, ms: MetricsSettings, backends: Backends):
        self.settings = settings
        self.ms = ms
        self.backends = backends
        self.store = open_store(settings, ms)
        self.collector = Collector(settings.probe_storage_path, ms.sample_interval)
        self.retention = Retention.from_settings(ms)
        self.rules = EventRules(max_age_seconds=ms.minute_retention_days * 86400)
        self.errors = ErrorSource(backends, self.store, interval=ms.error_refresh,
                                  on_change=lambda: self.snapshot.invalidate())
        self.uptime = Uptime(backends, interval=ms.uptime_refresh,
                             platform=ms.platform_services,
                             on_change=lambda: self.snapshot.invalidate())
        self.snapshot = Snapshot(self.collector, self.store, self.errors, self.uptime,
                                 ttl=ms.snapshot_ttl, min_refresh=ms.figures_min_refresh,
                                 idle=settings.session_idle_timeout, deadline=backends.deadline)
        self.hub = StreamHub(self.snapshot.stream_values, slack=ms.sample_interval / 2)
        self.collector.listeners.append(lambda _sample: self.hub.publish())
        self.fanout = Fanout(settings.redis_url, self.snapshot.invalidate,
                             ms.fanout_channel or default_channel(settings.redis_url))
        self.ingestor = Ingestor(self.store, max_events=ms.flush_max_events,
                                 on_commit=self._committed)
        self._compactor: asyncio.Task | None = None

    def _committed(self, batch: Batch) -> None:
        self.snapshot.invalidate()
        self.fanout.announce(batch.events)

    async def start(self) -> None:
        await self.store.open()
        self.ingestor.start()
        await self.collector.start()
        await self.fanout.start()
        self._compactor = asyncio.create_task(self._compact_forever(), name="metrics-compaction")

    async def compact(self) -> int:
        """One compaction and retention run; minute rows rolled up."""
        return await self.store.compact(time.time(), self.retention)

    async def _compact_forever(self) -> None:
        while True:
            try:
                await self.compact()
            except Exception as exc:
                log.error("compaction failed", extra={"error": repr(exc)})
            await asyncio.sleep(self.ms.compaction_interval)

    async def stop(self) -> None:
        if self._compactor:
            self._compactor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._compactor
        await self.ingestor.stop()
        await self.fanout.stop()
        await self.collector.stop()
        await self.snapshot.stop()
        await self.errors.stop()
        await self.uptime.stop()
        await self.store.close()
