"""Domain results to ``botmon.health.v1`` messages, and heartbeat requests to instances."""

from __future__ import annotations

from google.protobuf import json_format, timestamp_pb2

from botmon import __version__
from botmon.health.v1 import health_pb2, health_service_pb2
from services.health.prober import Snapshot
from services.health.probes.export import ExportResult
from services.health.probes.resources import CacheResources, DatabaseResources
from services.health.probes.result import (
    CacheResult,
    DatabaseResult,
    LlmResult,
    ProbeResult,
    StorageResult,
)
from services.health.registry import Instance

__all__ = [
    "cache_resources",
    "database_resources",
    "detailed_health",
    "health",
    "instance",
    "service_status",
    "status",
    "timestamp",
]


def timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def _common(result: ProbeResult) -> dict:
    return {"status": result.status, "latency_ms": result.latency_ms, "reason": result.reason,
            "probe_duration_ms": result.probe_duration_ms,
            "checked_at": timestamp(result.checked_at)}


def _database(r: DatabaseResult) -> health_pb2.DatabaseHealth:
    return health_pb2.DatabaseHealth(
        **_common(r), version=r.version, backend=r.backend,
        connection_pool=health_pb2.ConnectionPool(active=r.active, idle=r.idle, max=r.max))


def _cache(r: CacheResult) -> health_pb2.CacheHealth:
    return health_pb2.CacheHealth(**_common(r), memory_used_mb=r.memory_used_mb,
                                  hit_rate=r.hit_rate, version=r.version)


def _storage(r: StorageResult) -> health_pb2.StorageHealth:
    return health_pb2.StorageHealth(**_common(r), available_gb=r.available_gb,
                                    used_gb=r.used_gb, total_gb=r.total_gb, path=r.path)


def _llm(r: LlmResult) -> health_pb2.LlmHealth:
    return health_pb2.LlmHealth(**_common(r), model_loaded=r.model_loaded, model=r.model,
                                requests_per_second=r.requests_per_second)


def _export(r: ExportResult) -> health_pb2.ExportHealth:
    return health_pb2.ExportHealth(**_common(r), destinations=r.destinations,
                                   failing_destinations=r.failing_destinations)


_COMPONENTS = {"database": _database, "cache": _cache, "storage": _storage, "llm": _llm,
               "export": _export}


def health(snapshot: Snapshot) -> health_service_pb2.GetHealthResponse:
    return health_service_pb2.GetHealthResponse(
        status=snapshot.status, timestamp=timestamp(snapshot.taken_at), version=__version__)


def detailed_health(snapshot: Snapshot,
                    critical: tuple[str, ...]) -> health_service_pb2.GetDetailedHealthResponse:
    components = health_pb2.Components(**{
        name: convert(snapshot.results[name])
        for name, convert in _COMPONENTS.items() if name in snapshot.results})
    return health_service_pb2.GetDetailedHealthResponse(
        status=snapshot.status, components=components, timestamp=timestamp(snapshot.taken_at),
        version=__version__, critical_components=critical)


def service_status(entry: Instance, now: float) -> health_pb2.ServiceStatus:
    running = entry.status not in ("stopped", "starting", "not_configured")
    message = health_pb2.ServiceStatus(
        name=entry.name, status=entry.status, port=entry.port, pid=entry.pid,
        version=entry.version, host=entry.host, instance_id=entry.instance_id,
        uptime_seconds=int(now - entry.start_time) if running and entry.start_time else 0,
        model=entry.model)
    if running and entry.start_time:
        message.start_time.CopyFrom(timestamp(entry.start_time))
    if entry.last_heartbeat is not None:
        message.last_heartbeat_time.CopyFrom(timestamp(entry.last_heartbeat))
    if entry.memory_used_mb is not None:
        message.memory_used_mb = entry.memory_used_mb
    if entry.details:
        message.details.update(entry.details)
    return message


def status(entries: list[Instance], now: float) -> health_service_pb2.GetStatusResponse:
    """The status list as of ``now``."""
    return health_service_pb2.GetStatusResponse(
        services=[service_status(entry, now) for entry in entries], timestamp=timestamp(now))


def instance(request: health_service_pb2.HeartbeatRequest) -> Instance:
    """The instance a heartbeat describes (validated by the registry)."""
    return Instance(
        name=request.name, instance_id=request.instance_id, status=request.status,
        port=request.port, pid=request.pid, version=request.version, host=request.host,
        start_time=(request.start_time.ToNanoseconds() / 1e9
                    if request.HasField("start_time") else None),
        details=json_format.MessageToDict(request.details) if request.HasField("details") else {},
        ttl=request.ttl_seconds)


def database_resources(r: DatabaseResources,
                       now: float) -> health_service_pb2.GetDatabaseResourcesResponse:
    return health_service_pb2.GetDatabaseResourcesResponse(
        pool=health_service_pb2.DatabasePool(
            max_connections=r.max_connections, active_connections=r.active_connections,
            idle_connections=r.idle_connections, waiting_requests=r.waiting_requests,
            total_created=r.total_created, total_closed=r.total_closed),
        queries=health_service_pb2.DatabaseQueries(
            active=r.active_queries, slow_queries=r.slow_queries,
            average_duration_ms=r.average_duration_ms),
        backend=r.backend, timestamp=timestamp(now))


def cache_resources(r: CacheResources, now: float) -> health_service_pb2.GetCacheResourcesResponse:
    stats = health_service_pb2.CacheStatistics(
        hits=r.hits, misses=r.misses, hit_rate=r.hit_rate, evictions=r.evictions,
        memory_used_mb=r.memory_used_mb, keys_count=r.keys_count)
    if r.memory_limit_mb is not None:
        stats.memory_limit_mb = r.memory_limit_mb
    return health_service_pb2.GetCacheResourcesResponse(cache=stats, timestamp=timestamp(now))


