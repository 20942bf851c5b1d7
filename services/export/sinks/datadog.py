"""Datadog: metrics to ``POST /api/v2/series``, logs to ``POST /api/v2/logs``, gzip, ``DD-API-KEY``.

Written against Datadog's documented v2 schemas with aiohttp (already the suite's
HTTP client) rather than ``datadog-api-client``, whose async mode brings another
HTTP client and a typed model object per log line and point. Counters and
histograms are sent as Datadog counts of what happened since the previous export
(see ``cumulative``), as the Datadog Agent's OpenMetrics check sends them: a histogram as ``<name>.count``,
``<name>.sum`` and ``<name>.bucket`` tagged ``upper_bound`` (cumulative, like
``le``). Datadog's distributions need sketches of the raw observations, which a
bucketed histogram cannot honestly provide.
"""

from __future__ import annotations

import logging
import math
import re
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import aiohttp
import orjson

from botmon.runtime.config import ConfigError, EnvSettings, setting, url
from botmon.runtime.json_form import utc_second
from services.export.sinks.base import LogRecord, MetricFamily, SendResult, SinkError
from services.export.sinks.compression import gzipped
from services.export.sinks.cumulative import Delta, Deltas
from services.export.sinks.http import status_error
from services.export.sinks.metadata import text

__all__ = ["DatadogSink", "Settings", "create"]

log = logging.getLogger("botmon.export.datadog")

# Documented intake limits: logs 1,000 entries and 5 MB uncompressed per call; series
# 500 KB compressed per call (gzip never grows 500,000 bytes past 512,000).
MAX_LOGS = 1_000
MAX_LOG_BYTES = 5_000_000
MAX_SERIES_BYTES = 500_000
MAX_LOG_AGE_NS = 18 * 3600 * 10**9  # the oldest log timestamp the intake keeps
REQUEST_TIMEOUT = 30.0

GAUGE, COUNT = 3, 1
STATUSES = {"debug": "debug", "info": "info", "warn": "warning", "error": "error"}
_UNITS = {"seconds": "second", "milliseconds": "millisecond", "bytes": "byte",
          "percent": "percent"}


def _site(raw: str) -> str:
    site = raw.strip().lower()
    if not re.fullmatch(r"([a-z0-9-]+\.)+[a-z]{2,}", site):
        raise ValueError(f"expected a Datadog site like datadoghq.com or datadoghq.eu, got {raw!r}")
    return site


@dataclass(frozen=True)
class Settings(EnvSettings):
    """Where the Datadog destination sends."""

    api_key: str | None = setting(
        "BOTMON_DATADOG_API_KEY", None, secret=True,
        doc="Datadog API key; set to export logs and metrics to Datadog")
    site: str = setting(
        "BOTMON_DATADOG_SITE", "datadoghq.com", _site,
        doc="Datadog site: datadoghq.com, us3.datadoghq.com, us5.datadoghq.com, datadoghq.eu, "
            "ap1.datadoghq.com, ddog-gov.com")
    url: str | None = setting(
        "BOTMON_DATADOG_URL", None, url("http", "https"),
        doc="one base URL for both /api/v2/series and /api/v2/logs (a proxy); overrides the site")

    @property
    def enabled(self) -> bool:
        return self.api_key is not None

    def _derived(self) -> Settings:
        if self.url and not self.api_key:
            raise ConfigError("BOTMON_DATADOG_API_KEY: required with BOTMON_DATADOG_URL")
        return self

    @property
    def series_url(self) -> str:
        return (self.url or f"https://api.{self.site}").rstrip("/") + "/api/v2/series"

    @property
    def logs_url(self) -> str:
        return (self.url or f"https://http-intake.logs.{self.site}").rstrip("/") + "/api/v2/logs"


def _tag(key: str, value: Any) -> str:
    return f"{key}:{text(value)}".replace(",", "_")[:200]


def log_item(record: LogRecord, hostname: str) -> dict[str, str]:
    """One HTTPLogItem; its extra attributes are strings, as the v2 schema requires."""
    seconds, nanos = divmod(record.timestamp_ns, 1_000_000_000)
    item = {
        "ddsource": "botmon",
        "service": record.service,
        "hostname": hostname,
        "status": STATUSES.get(record.level, record.level),
        "message": record.message,
        "timestamp": f"{utc_second(seconds)}.{nanos // 1_000_000:03d}Z",
        "ddtags": "",
    }
    if record.metadata:
        tags = []
        for key, value in record.metadata.items():
            shown = text(value)
            tags.append(f"{key}:{shown}".replace(",", "_")[:200])  # _tag's, with text made once
            item[f"metadata.{key}"] = shown
        item["ddtags"] = ",".join(tags)
    return item


def _entry(name: str, kind: int, value: float, seconds: int, tags: list[str], hostname: str,
           unit: str | None = None, interval: float | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"metric": name, "type": kind,
                             "points": [{"timestamp": seconds, "value": value}],
                             "tags": tags, "resources": [{"name": hostname, "type": "host"}]}
    if unit:
        entry["unit"] = unit
    if interval is not None:
        entry["interval"] = max(1, round(interval))
    return entry


def series(families: Sequence[MetricFamily], deltas: Deltas, hostname: str
           ) -> Iterator[tuple[dict[str, Any], Delta | None]]:
    """(MetricSeries, the delta it completes) of every sample worth sending now."""
    for family in families:
        seconds = family.timestamp_ns // 1_000_000_000
        unit = _UNITS.get(family.unit)
        for sample in family.samples:
            tags = [_tag(k, v) for k, v in sorted(sample.labels.items())]
            if family.kind == "gauge":
                if math.isfinite(sample.value):
                    yield _entry(family.name, GAUGE, sample.value, seconds, tags, hostname,
                                 unit), None
                continue
            delta = deltas.delta(family, sample)
            if delta is None:
                continue
            every = delta.interval_s
            if family.kind == "counter":
                yield _entry(family.name, COUNT, delta.values[0], seconds, tags, hostname,
                             interval=every), delta
                continue
            count, total, *cumulative = delta.values
            out = [_entry(f"{family.name}.count", COUNT, count, seconds, tags, hostname,
                          interval=every),
                   _entry(f"{family.name}.sum", COUNT, total, seconds, tags, hostname, unit,
                          every)]
            out += [_entry(f"{family.name}.bucket", COUNT, in_bucket, seconds,
                           [*tags, f"upper_bound:{_bound(b.upper_bound)}"], hostname,
                           interval=every)
                    for b, in_bucket in zip(sample.buckets, cumulative, strict=True)]
            # The delta is acknowledged with the sample's last series, once all are sent.
            yield from ((entry, None) for entry in out[:-1])
            yield out[-1], delta


def _bound(bound: float) -> str:
    return "inf" if math.isinf(bound) else f"{bound:g}"


def _encode(item: dict[str, Any]) -> bytes:
    # Strings, ints, floats, lists and dicts (metadata is text by now): nothing orjson
    # refuses but a lone surrogate, which the stdlib encoder's UTF-8 refused as well.
    return orjson.dumps(item)


class DatadogSink:
    """Posts gzip-compressed JSON to the v2 intake of the configured site."""

    name: ClassVar[str] = "datadog"
    max_records: ClassVar[int] = MAX_LOGS
    max_bytes: ClassVar[int] = 4 * 1024 * 1024

    def __init__(self, settings: Settings):
        self._settings = settings
        self.endpoint = settings.url or settings.site  # shown in /status
        self._hostname = socket.gethostname()
        self._session: aiohttp.ClientSession | None = None
        self._deltas = Deltas()

    async def send_logs(self, records: Sequence[LogRecord]) -> SendResult:
        # Datadog accepts older logs with a 202 and drops them: count them failed instead.
        cutoff = time.time_ns() - MAX_LOG_AGE_NS
        too_old = tuple(i for i, r in enumerate(records) if r.timestamp_ns < cutoff)
        if too_old:
            log.warning("datadog: %d entries older than 18 h not sent (Datadog drops them)",
                        len(too_old))
        hostname = self._hostname
        encoded = {i: _encode(log_item(r, hostname))
                   for i, r in enumerate(records) if r.timestamp_ns >= cutoff}
        chunks: list[list[int]] = []
        size = 0
        for index, item in encoded.items():
            if not chunks or len(chunks[-1]) == MAX_LOGS or size + len(item) + 1 > MAX_LOG_BYTES:
                chunks.append([])
                size = 2
            chunks[-1].append(index)
            size += len(item) + 1
        for number, chunk in enumerate(chunks):
            body = b"[" + b",".join(encoded[i] for i in chunk) + b"]"
            try:
                await self._post(self._settings.logs_url, body)
            except SinkError:
                if number == 0:
                    raise
                unsent = [i for later in chunks[number:] for i in later]
                return SendResult(retry=tuple(unsent), rejected=too_old)
        return SendResult(rejected=too_old)

    async def send_metrics(self, families: Sequence[MetricFamily]) -> SendResult:
        chunk: list[bytes] = []
        carried: list[Delta] = []
        size = 16
        for entry, delta in series(families, self._deltas, self._hostname):
            encoded = _encode(entry)
            if chunk and size + len(encoded) + 1 > MAX_SERIES_BYTES:
                await self._post_series(chunk, carried)
                chunk, carried, size = [], [], 16
            chunk.append(encoded)
            size += len(encoded) + 1
            if delta is not None:
                carried.append(delta)
        if chunk:
            await self._post_series(chunk, carried)
        return SendResult()

    async def _post_series(self, chunk: list[bytes], deltas: list[Delta]) -> None:
        await self._post(self._settings.series_url, b'{"series":[' + b",".join(chunk) + b"]}")
        self._deltas.acknowledge(deltas)

    async def _post(self, target: str, body: bytes) -> None:
        if self._session is None:  # created on first use, on the loop that sends
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT))
        headers = {"DD-API-KEY": self._settings.api_key or "", "Content-Encoding": "gzip",
                   "Content-Type": "application/json", "Accept": "application/json"}
        data = await gzipped(body, 6)
        try:
            async with self._session.post(target, data=data, headers=headers,
                                          allow_redirects=False) as reply:
                answer = await reply.text(errors="replace")
                if reply.status < 300:
                    return
                error = status_error(self.name, reply.status, reply.headers, answer)
                reset = reply.headers.get("X-RateLimit-Reset", "")
                if reply.status == 429 and error.retry_after is None and reset.isdigit():
                    error.retry_after = float(reset)
                raise error
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise SinkError(f"{self.name} unreachable: {type(exc).__name__}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def create(settings: Settings) -> DatadogSink:
    return DatadogSink(settings)
