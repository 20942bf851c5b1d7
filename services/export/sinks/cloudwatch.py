"""Amazon CloudWatch: ``PutMetricData`` into a namespace, and CloudWatch Logs
``PutLogEvents`` into one log stream per service (group and streams created when missing).

Uses aiobotocore: botocore's own request signing, credential chain and service models,
on the event loop the export already runs (boto3 would need a thread per call).
botocore's retries are off: the export loop retries, with its backoff and counters.
botocore's parameter validation is off too: what it checks (required members, types, the
models' minimum lengths and list sizes) holds by construction here, as ``_put_log_events``
and ``metric_data`` say, and it took a fifth of this destination's CPU per entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import botocore.exceptions
import orjson
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session

from botmon.runtime.config import EnvSettings, setting, url
from services.export.sinks.base import LogRecord, MetricFamily, SendResult, SinkError
from services.export.sinks.cumulative import Delta, Deltas
from services.export.sinks.http import status_error
from services.export.sinks.metadata import jsonable

__all__ = ["CloudWatchSink", "Settings", "create", "log_batches"]

# CloudWatch Logs' PutLogEvents limits.
MAX_EVENTS = 10_000
MAX_BATCH_BYTES = 1_048_576
EVENT_OVERHEAD = 26
MAX_SPAN_MS = 24 * 3600 * 1000
# PutMetricData's: metric data items, request size (kept below 1 MB), dimensions.
MAX_DATUMS = 1_000
MAX_METRIC_BYTES = 900_000
MAX_DIMENSIONS = 30
MAX_VALUES = 150

_THROTTLING = frozenset({"ThrottlingException", "Throttling", "RequestLimitExceeded",
                         "TooManyRequestsException", "ServiceUnavailableException",
                         "RequestThrottled", "LimitExceededException"})
_UNITS = {"seconds": "Seconds", "milliseconds": "Milliseconds", "bytes": "Bytes",
          "percent": "Percent", "ratio": "None"}


def _region(raw: str) -> str:
    if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d+", raw.strip()):
        raise ValueError(f"expected an AWS region like eu-west-1, got {raw!r}")
    return raw.strip()


def _namespace(raw: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._/#:\- ]{1,255}", raw) or raw.startswith(("AWS/", ":")):
        raise ValueError(f"expected 1-255 of A-Z a-z 0-9 . - _ / # : (not AWS/...), got {raw!r}")
    return raw


def _log_group(raw: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._/#\-]{1,512}", raw):
        raise ValueError(f"expected 1-512 of A-Z a-z 0-9 . - _ / #, got {raw!r}")
    return raw


@dataclass(frozen=True)
class Settings(EnvSettings):
    """Where the CloudWatch destination sends; credentials come from the AWS chain."""

    region: str | None = setting(
        "BOTMON_CLOUDWATCH_REGION", None, _region,
        doc="AWS region (e.g. eu-west-1); set to export to CloudWatch, with credentials from "
            "the standard AWS chain (environment, profile, web identity, instance role)")
    namespace: str = setting(
        "BOTMON_CLOUDWATCH_NAMESPACE", "BotServer", _namespace,
        doc="CloudWatch metrics namespace")
    log_group: str = setting(
        "BOTMON_CLOUDWATCH_LOG_GROUP", "/botserver/botmon", _log_group,
        doc="CloudWatch Logs group; one stream per service, both created when missing")
    endpoint_url: str | None = setting(
        "BOTMON_CLOUDWATCH_ENDPOINT_URL", None, url("http", "https"),
        doc="endpoint override for CloudWatch and CloudWatch Logs (e.g. LocalStack)")

    @property
    def enabled(self) -> bool:
        return self.region is not None or self.endpoint_url is not None


def stream_name(service: str) -> str:
    """A log stream name may not contain ``:`` or ``*``."""
    return re.sub(r"[:*]", "_", service) or "_"


def event_message(record: LogRecord) -> str:
    """One JSON object per event, so CloudWatch Logs Insights discovers every field."""
    document = {"level": record.level, "service": record.service, "message": record.message,
                "metadata": jsonable(dict(record.metadata))}
    try:
        return orjson.dumps(document, default=str).decode()
    except orjson.JSONEncodeError:  # an integer beyond 64 bits: as the stdlib writes it
        return json.dumps(document, ensure_ascii=False, separators=(",", ":"), default=str)


def log_batches(events: Sequence[tuple[int, int, str]]) -> Iterator[list[tuple[int, int, str]]]:
    """``(timestamp_ms, index, message)`` events, sorted, cut to PutLogEvents' limits."""
    batch: list[tuple[int, int, str]] = []
    size = 0
    for event in sorted(events):
        event_size = len(event[2].encode()) + EVENT_OVERHEAD
        if batch and (len(batch) == MAX_EVENTS or size + event_size > MAX_BATCH_BYTES
                      or event[0] - batch[0][0] >= MAX_SPAN_MS):
            yield batch
            batch, size = [], 0
        batch.append(event)
        size += event_size
    if batch:
        yield batch


def _dimensions(labels: dict[str, str]) -> list[dict[str, str]]:
    # CloudWatch refuses empty dimension names and values; at most 30 dimensions.
    return [{"Name": k[:255], "Value": v[:1024]} for k, v in sorted(labels.items()) if k and v
            ][:MAX_DIMENSIONS]


def metric_data(families: Sequence[MetricFamily], deltas: Deltas
                ) -> Iterator[tuple[dict[str, Any], Delta | None]]:
    """(MetricDatum, the delta it carries) of every sample worth sending now.

    Each datum has a non-empty MetricName, a datetime Timestamp, float values and the
    non-empty string dimensions of :func:`_dimensions`: what botocore's validation checked.
    """
    for family in families:
        if not family.name:
            continue
        when = datetime.datetime.fromtimestamp(family.timestamp_ns / 1e9, datetime.UTC)
        unit = _UNITS.get(family.unit)
        for sample in family.samples:
            base = {"MetricName": family.name, "Dimensions": _dimensions(dict(sample.labels)),
                    "Timestamp": when}
            if family.kind == "gauge":
                if math.isfinite(sample.value):
                    yield {**base, "Value": sample.value, **_unit(unit)}, None
                continue
            delta = deltas.delta(family, sample)
            if delta is None:
                continue
            if family.kind == "counter":
                yield {**base, "Value": delta.values[0], "Unit": unit or "Count"}, delta
                continue
            count, total, *cumulative = delta.values
            data = [{**base, "MetricName": f"{family.name}_count", "Value": count,
                     "Unit": "Count"},
                    {**base, "MetricName": f"{family.name}_sum", "Value": total, **_unit(unit)}]
            values, counts = _distribution([b.upper_bound for b in sample.buckets], cumulative)
            if values:
                data.append({**base, "Values": values, "Counts": counts, **_unit(unit)})
            # The delta is acknowledged with the series' last datum, once all of them are sent.
            yield from ((datum, None) for datum in data[:-1])
            yield data[-1], delta


def _distribution(bounds: list[float], cumulative: list[float]) -> tuple[list[float], list[float]]:
    """Observations per bucket, each at its upper bound; above the last finite bound, at it."""
    finite = [b for b in bounds if math.isfinite(b)]
    if not finite:
        return [], []
    per_value: dict[float, float] = {}
    below = 0.0
    for bound, count in zip(bounds, cumulative, strict=True):
        at = bound if math.isfinite(bound) else finite[-1]
        if count - below > 0:
            per_value[at] = per_value.get(at, 0.0) + count - below
        below = count
    values = sorted(per_value)[:MAX_VALUES]
    return values, [per_value[v] for v in values]


def _unit(unit: str | None) -> dict[str, str]:
    return {"Unit": unit} if unit else {}


def _datum_size(datum: dict[str, Any]) -> int:
    return 120 + len(datum["MetricName"]) + sum(
        len(d["Name"]) + len(d["Value"]) + 40 for d in datum["Dimensions"]) + \
        24 * len(datum.get("Values", ()))


class CloudWatchSink:
    """PutLogEvents per service stream and PutMetricData, within CloudWatch's limits."""

    name: ClassVar[str] = "cloudwatch"
    max_records: ClassVar[int] = MAX_EVENTS
    max_bytes: ClassVar[int] = MAX_BATCH_BYTES

    def __init__(self, settings: Settings, session: AioSession | None = None):
        self._settings = settings
        self.endpoint = settings.endpoint_url or settings.region or ""  # shown in /status
        self._session = session or get_session()
        self._clients: contextlib.AsyncExitStack | None = None
        self._connecting = asyncio.Lock()
        self._logs: Any = None
        self._metrics: Any = None
        self._group_ready = False
        self._streams: set[str] = set()
        self._deltas = Deltas()

    async def _connect(self) -> None:
        async with self._connecting:  # the logs and metrics tasks may both arrive first
            if self._clients is None:
                await self._open()

    async def _open(self) -> None:
        s = self._settings
        config = AioConfig(connect_timeout=10, read_timeout=30, parameter_validation=False,
                           retries={"max_attempts": 1, "mode": "standard"})
        options = {"region_name": s.region, "endpoint_url": s.endpoint_url, "config": config}
        stack = contextlib.AsyncExitStack()
        self._logs = await stack.enter_async_context(self._session.create_client("logs", **options))
        self._metrics = await stack.enter_async_context(
            self._session.create_client("cloudwatch", **options))
        self._clients = stack

    async def send_logs(self, records: Sequence[LogRecord]) -> SendResult:
        await self._connect()
        by_stream: dict[str, list[tuple[int, int, str]]] = {}
        for index, record in enumerate(records):
            by_stream.setdefault(stream_name(record.service), []).append(
                (record.timestamp_ns // 1_000_000, index, event_message(record)))
        unsent = set(range(len(records)))
        rejected: list[int] = []
        for stream, events in by_stream.items():
            for batch in log_batches(events):
                try:
                    info = await self._put_log_events(stream, batch)
                except SinkError:
                    if len(unsent) == len(records):
                        raise
                    return SendResult(retry=tuple(sorted(unsent)), rejected=tuple(rejected))
                unsent.difference_update(index for _, index, _ in batch)
                rejected.extend(batch[i][1] for i in _refused(info, len(batch)))
        return SendResult(rejected=tuple(sorted(rejected)))

    async def _put_log_events(self, stream: str, batch: list[tuple[int, int, str]]) -> dict:
        # What botocore's validation checked holds by construction: the group and stream
        # names are non-empty strings (the group's setting is checked at start, a stream is
        # named after a stored entry's service, never empty), a batch has 1 to MAX_EVENTS
        # events, timestamps are whole milliseconds since 2000 at least (the logs service
        # refuses older ones), messages are non-empty JSON text.
        events = [{"timestamp": ms, "message": message} for ms, _, message in batch]
        for attempt in (1, 2):
            await self._ensure_stream(stream)
            try:
                reply = await self._logs.put_log_events(
                    logGroupName=self._settings.log_group, logStreamName=stream,
                    logEvents=events)
            except botocore.exceptions.ClientError as exc:
                if _code(exc) == "ResourceNotFoundException" and attempt == 1:
                    self._group_ready, self._streams = False, set()  # deleted under us
                    continue
                raise _error(exc) from None
            except botocore.exceptions.BotoCoreError as exc:
                raise SinkError(f"cloudwatch: {exc}") from None
            return reply.get("rejectedLogEventsInfo") or {}
        raise AssertionError("unreachable")

    async def _ensure_stream(self, stream: str) -> None:
        if stream in self._streams:
            return
        group = self._settings.log_group
        try:
            if not self._group_ready:
                await _create(self._logs.create_log_group(logGroupName=group))
                self._group_ready = True
            await _create(self._logs.create_log_stream(logGroupName=group, logStreamName=stream))
        except botocore.exceptions.ClientError as exc:
            raise _error(exc) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise SinkError(f"cloudwatch: {exc}") from None
        self._streams.add(stream)

    async def send_metrics(self, families: Sequence[MetricFamily]) -> SendResult:
        await self._connect()
        chunk: list[dict[str, Any]] = []
        carried: list[Delta] = []
        size = 0
        for datum, delta in metric_data(families, self._deltas):
            if chunk and (len(chunk) == MAX_DATUMS or size + _datum_size(datum) > MAX_METRIC_BYTES):
                await self._put_metric_data(chunk, carried)
                chunk, carried, size = [], [], 0
            chunk.append(datum)
            size += _datum_size(datum)
            if delta is not None:
                carried.append(delta)
        if chunk:
            await self._put_metric_data(chunk, carried)
        return SendResult()

    async def _put_metric_data(self, data: list[dict[str, Any]], deltas: list[Delta]) -> None:
        try:
            await self._metrics.put_metric_data(Namespace=self._settings.namespace,
                                                MetricData=data)
        except botocore.exceptions.ClientError as exc:
            raise _error(exc) from None
        except botocore.exceptions.BotoCoreError as exc:
            raise SinkError(f"cloudwatch: {exc}") from None
        # Acknowledged: a resend of this snapshot will not send these increases again.
        self._deltas.acknowledge(deltas)

    async def close(self) -> None:
        if self._clients is not None:
            await self._clients.aclose()
            self._clients = None


async def _create(call) -> None:
    """Create a log group or stream; one that exists already is what was wanted."""
    try:
        await call
    except botocore.exceptions.ClientError as exc:
        if _code(exc) != "ResourceAlreadyExistsException":
            raise


def _refused(info: dict[str, int], count: int) -> list[int]:
    """Positions in a batch that CloudWatch Logs refused for good (too old, expired, too new)."""
    refused: set[int] = set()
    for key in ("tooOldLogEventEndIndex", "expiredLogEventEndIndex"):
        if key in info:
            refused.update(range(0, info[key] + 1))
    if "tooNewLogEventStartIndex" in info:
        refused.update(range(info["tooNewLogEventStartIndex"], count))
    return sorted(refused)


def _code(exc: botocore.exceptions.ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def _error(exc: botocore.exceptions.ClientError) -> SinkError:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500)
    headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    error = status_error("cloudwatch", status, headers, _code(exc))
    if _code(exc) in _THROTTLING:
        error.retryable = True
    return error


def create(settings: Settings) -> CloudWatchSink:
    return CloudWatchSink(settings)
