"""Elasticsearch: ``_bulk`` into the ``logs-botmon-default`` and ``metrics-botmon-default``
data streams, ECS documents, index templates installed when missing.

Uses the official client (``AsyncElasticsearch``, 8.x: it speaks to 8.x clusters and,
through REST compatibility, to 9.x). The client's own retries are off: the export loop
retries whole batches, and this sink reports failed bulk items one by one. Bulk lines are
serialised here with orjson (the client passes a bytes body through) and answers are parsed
with it; request bodies are gzipped at ``GZIP_LEVEL`` by :class:`_Node`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import elastic_transport
import orjson
from elastic_transport import AiohttpHttpNode, HttpHeaders, NodeConfig
from elastic_transport.client_utils import DEFAULT
from elasticsearch import ApiError, AsyncElasticsearch
from elasticsearch.serializer import OrjsonSerializer

from botmon.runtime.config import ConfigError, EnvSettings, setting, url
from botmon.runtime.json_form import utc_second
from services.export.sinks.base import LogRecord, MetricFamily, SendResult, SinkError
from services.export.sinks.compression import gzipped
from services.export.sinks.elasticsearch_templates import (
    ECS_VERSION,
    LOGS_STREAM,
    METRICS_STREAM,
    TEMPLATES,
)
from services.export.sinks.http import retryable, status_error
from services.export.sinks.metadata import text

__all__ = ["ElasticsearchSink", "Settings", "create"]

log = logging.getLogger("botmon.export.elasticsearch")

#: Seconds one request may take (the loop's BOTMON_EXPORT_SEND_TIMEOUT bounds a whole send).
REQUEST_TIMEOUT = 30.0
#: Of a bulk body of log documents, level 3 takes a tenth of the CPU of level 9 (what the
#: client's own ``http_compress`` uses) and sends about a fifth more bytes; level 1 saves
#: little more CPU and sends a third to a half more.
GZIP_LEVEL = 3


def _no_userinfo(raw: str) -> str:
    # Checked before the scheme, so that an error message never echoes a password.
    if "@" in raw.split("://", 1)[-1].split("/", 1)[0]:
        raise ValueError("put credentials in BOTMON_ELASTICSEARCH_API_KEY or "
                         "BOTMON_ELASTICSEARCH_USERNAME/_PASSWORD, not in the URL")
    return url("http", "https")(raw)


@dataclass(frozen=True)
class Settings(EnvSettings):
    """Where the Elasticsearch destination sends, and how it authenticates."""

    url: str | None = setting(
        "BOTMON_ELASTICSEARCH_URL", None, _no_userinfo,
        doc="Elasticsearch base URL (e.g. https://es:9200); set to export logs and metrics there")
    api_key: str | None = setting(
        "BOTMON_ELASTICSEARCH_API_KEY", None, secret=True,
        doc="Elasticsearch API key (the encoded id:key), sent as Authorization: ApiKey")
    username: str | None = setting(
        "BOTMON_ELASTICSEARCH_USERNAME", None, doc="Elasticsearch user for basic authentication")
    password: str | None = setting(
        "BOTMON_ELASTICSEARCH_PASSWORD", None, secret=True,
        doc="password of BOTMON_ELASTICSEARCH_USERNAME")
    ca_file: str | None = setting(
        "BOTMON_ELASTICSEARCH_CA_FILE", None,
        doc="PEM bundle that verifies the cluster's certificate (default: system CAs)")

    @property
    def enabled(self) -> bool:
        return self.url is not None

    def _derived(self) -> Settings:
        if self.api_key and self.username:
            raise ConfigError("BOTMON_ELASTICSEARCH_API_KEY: set it or "
                              "BOTMON_ELASTICSEARCH_USERNAME/_PASSWORD, not both")
        if bool(self.username) != bool(self.password):
            missing = "PASSWORD" if self.username else "USERNAME"
            raise ConfigError(f"BOTMON_ELASTICSEARCH_{missing}: required with the other of "
                              "BOTMON_ELASTICSEARCH_USERNAME/_PASSWORD")
        return self


def rfc3339_nanos(ns: int) -> str:
    seconds, nanos = divmod(ns, 1_000_000_000)
    return f"{utc_second(seconds)}.{nanos:09d}Z"


def labels(values: dict[str, Any] | Any) -> dict[str, str]:
    """ECS labels: flat string values, no dots in keys (a dot would make an object path)."""
    return {str(k).replace(".", "_"): text(v) for k, v in values.items()}


def _stream(kind: str) -> dict[str, str]:
    return {"type": kind, "dataset": "botmon", "namespace": "default"}


def log_document(record: LogRecord) -> dict[str, Any]:
    return {
        "@timestamp": rfc3339_nanos(record.timestamp_ns),
        "message": record.message,
        "log": {"level": record.level},
        "service": {"name": record.service},
        "labels": labels(record.metadata),
        "event": {"sequence": record.position},
        "ecs": {"version": ECS_VERSION},
        "data_stream": _stream("logs"),
    }


def metric_documents(family: MetricFamily) -> Iterator[tuple[str, dict[str, Any]]]:
    """(document id, document) per sample; ids make a resent sample a no-op (409)."""
    for sample in family.samples:
        metric: dict[str, Any] = {"name": family.name, "type": family.kind}
        if family.start_ns:  # counters and histograms
            metric["start"] = rfc3339_nanos(family.start_ns)
        if family.unit:
            metric["unit"] = family.unit
        if family.kind == "histogram":
            bounds, counts, below = [], [], 0
            for bucket in sample.buckets:
                if math.isfinite(bucket.upper_bound):
                    bounds.append(bucket.upper_bound)
                    counts.append(max(0, bucket.count - below))
                    below = bucket.count
            metric.update(count=sample.count, sum=sample.sum)
            if bounds:
                metric["histogram"] = {"values": bounds, "counts": counts}
            if not math.isfinite(sample.sum):
                continue
        elif math.isfinite(sample.value):
            metric["value"] = sample.value
        else:
            continue  # NaN and infinities have no JSON form; ES could not store them
        key = json.dumps([family.name, sorted(sample.labels.items()), family.timestamp_ns])
        yield hashlib.blake2b(key.encode(), digest_size=12).hexdigest(), {
            "@timestamp": rfc3339_nanos(family.timestamp_ns),
            "metric": metric,
            "labels": labels(sample.labels),
            "service": {"name": "botmon"},
            "ecs": {"version": ECS_VERSION},
            "data_stream": _stream("metrics"),
        }


def _dumps(value: Any) -> bytes:
    """One NDJSON line's JSON; what orjson refuses (a lone surrogate, an integer beyond 64
    bits) as the client's own stdlib serializer wrote it."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode(
            "utf-8", "surrogatepass")


class _Json(OrjsonSerializer):
    """orjson for JSON answers; what it refuses (a lone surrogate's escape) goes to the stdlib,
    so that such an answer is read rather than retried for ever."""

    def json_loads(self, data: bytes) -> Any:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            return json.loads(data)


class _Node(AiohttpHttpNode):
    """The client's aiohttp node, gzipping request bodies at ``GZIP_LEVEL``, large ones
    beside the event loop (the client's ``http_compress`` gzips at level 9 on the loop)."""

    def __init__(self, config: NodeConfig):
        super().__init__(config)
        self.headers["accept-encoding"] = "gzip"  # answers compressed, as http_compress asks

    async def perform_request(self, method: str, target: str, body: bytes | None = None,
                              headers: HttpHeaders | None = None,
                              request_timeout: Any = DEFAULT) -> Any:
        if body:
            body = await gzipped(body, GZIP_LEVEL)
            headers = HttpHeaders(headers or {})
            headers["content-encoding"] = "gzip"
        return await super().perform_request(method, target, body, headers, request_timeout)


class ElasticsearchSink:
    """Bulk-indexes into botmon's data streams; failed items come back one by one."""

    name: ClassVar[str] = "elasticsearch"
    max_records: ClassVar[int] = 5_000
    max_bytes: ClassVar[int] = 5 * 1024 * 1024

    def __init__(self, settings: Settings):
        self._settings = settings
        self.endpoint = settings.url or ""  # shown in /status
        self._client: AsyncElasticsearch | None = None
        self._templates_checked = False

    def _connect(self) -> AsyncElasticsearch:
        if self._client is None:  # created on first use, on the loop that sends
            s = self._settings
            json_serializer = _Json()
            self._client = AsyncElasticsearch(
                s.url, api_key=s.api_key,
                basic_auth=(s.username, s.password) if s.username else None,
                ca_certs=s.ca_file, node_class=_Node, request_timeout=REQUEST_TIMEOUT,
                max_retries=0, retry_on_timeout=False,
                serializers={"application/json": json_serializer,
                             "application/vnd.elasticsearch+json": json_serializer})
        return self._client

    async def send_logs(self, records: Sequence[LogRecord]) -> SendResult:
        lines: list[bytes] = []
        for record in records:
            lines.append(_dumps({"create": {"_index": LOGS_STREAM,
                                            "_id": f"{record.position}-{record.timestamp_ns}"}}))
            lines.append(_dumps(log_document(record)))
        return await self._bulk(lines, list(range(len(records))))

    async def send_metrics(self, families: Sequence[MetricFamily]) -> SendResult:
        lines: list[bytes] = []
        owners: list[int] = []
        for index, family in enumerate(families):
            for doc_id, document in metric_documents(family):
                lines.append(_dumps({"create": {"_index": METRICS_STREAM, "_id": doc_id}}))
                lines.append(_dumps(document))
                owners.append(index)
        return await self._bulk(lines, owners) if lines else SendResult()

    async def _bulk(self, lines: list[bytes], owners: list[int]) -> SendResult:
        """One ``_bulk`` call of NDJSON ``lines``; item ``i`` belongs to input ``owners[i]``."""
        client = self._connect()
        await self._install_templates(client)
        try:
            # One bytes body: the client's NDJSON serializer passes it through as it is.
            body = b"\n".join(lines) + b"\n"
            response = await client.bulk(operations=body)  # type: ignore[arg-type]
        except ApiError as exc:
            raise status_error(self.name, exc.meta.status, exc.meta.headers,
                               _reason(exc.body)) from None
        except elastic_transport.TransportError as exc:
            raise SinkError(f"{self.name} unreachable: {type(exc).__name__}") from None
        if not response.body.get("errors"):
            return SendResult()
        retry: set[int] = set()
        rejected: dict[int, str] = {}
        for owner, item in zip(owners, response.body["items"], strict=True):
            (outcome,) = item.values()
            status = outcome.get("status", 500)
            if status < 300 or status == 409:  # 409: the document is already there
                continue
            if retryable(status):
                retry.add(owner)
            else:
                rejected[owner] = _reason(outcome)
        for owner in retry:
            rejected.pop(owner, None)
        if rejected:
            log.warning("elasticsearch refused %d documents for good, e.g.: %s",
                        len(rejected), next(iter(rejected.values())))
        return SendResult(retry=tuple(sorted(retry)), rejected=tuple(sorted(rejected)))

    async def _install_templates(self, client: AsyncElasticsearch) -> None:
        if self._templates_checked:
            return
        try:
            for name, body in TEMPLATES.items():
                if not await client.indices.exists_index_template(name=name):
                    await client.indices.put_index_template(name=name, **body)
                    log.info("installed the index template %s", name)
        except ApiError as exc:
            if exc.meta.status != 403:
                raise status_error(self.name, exc.meta.status, exc.meta.headers,
                                   _reason(exc.body)) from None
            # Credentials that may write but not manage templates: an administrator
            # installed them, or the built-in logs-*-* / metrics-*-* templates apply.
            log.warning("elasticsearch: no privilege to manage index templates; "
                        "writing without installing them")
        except elastic_transport.TransportError as exc:
            raise SinkError(f"{self.name} unreachable: {type(exc).__name__}") from None
        self._templates_checked = True

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


def _reason(body: Any) -> str:
    """``type: reason`` of an Elasticsearch error body (a bulk item or a whole answer)."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return f"{error.get('type', 'error')}: {error.get('reason', '')}"
    return str(error or body or "")[:200]


def create(settings: Settings) -> ElasticsearchSink:
    return ElasticsearchSink(settings)
