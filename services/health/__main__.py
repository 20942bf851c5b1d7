"""The health service: wiring only."""

from __future__ import annotations

from botmon.health.v1 import health_service_pb2, health_service_pb2_grpc
from botmon.runtime.channels import Backends
from botmon.runtime.config import Settings
from botmon.runtime.main import run_service
from botmon.runtime.server import Binding, GrpcServer
from botmon.runtime.store import StoreLocation
from services.health import messages
from services.health.config import HealthSettings
from services.health.prober import Prober
from services.health.probes.cache import RedisProbe
from services.health.probes.export import ExportProbe
from services.health.probes.llm import LlmProbe
from services.health.probes.postgresql import PostgresProbe
from services.health.probes.probe import NotConfigured, Probe
from services.health.probes.result import CacheResult, LlmResult
from services.health.probes.sqlite import SqliteProbe
from services.health.probes.storage import StorageProbe
from services.health.redis_registry import RedisRegistry
from services.health.registry import MemoryRegistry, Registry
from services.health.server import HealthServer
from services.health.servicer import HealthServicer
from services.health.status import StatusBoard
from services.health.status_view import StatusView
from services.health.traffic import PlatformTraffic

SERVICE_NAME = health_service_pb2.DESCRIPTOR.services_by_name["HealthService"].full_name


def database_probe(settings: Settings) -> PostgresProbe | SqliteProbe:
    location = StoreLocation.parse(settings.probe_database_url)
    if location.kind == "postgresql":
        return PostgresProbe(location.dsn, timeout=settings.probe_timeout,
                             slow_query_ms=settings.slow_query_ms)
    # Only the suite's own store may be created by probing it; any other file must exist.
    return SqliteProbe(location.path, timeout=settings.probe_timeout,
                       create=settings.probe_database_url == settings.store_url)


def registry(settings: Settings, health: HealthSettings) -> Registry:
    if settings.redis_url:
        return RedisRegistry(settings.redis_url, retention=health.stopped_retention,
                             timeout=settings.grpc_deadline)
    return MemoryRegistry(retention=health.stopped_retention)


async def create_server(settings: Settings, *, address: str | None = None,
                        health_settings: HealthSettings | None = None) -> GrpcServer:
    """Build the health service's server (not started)."""
    health = health_settings or HealthSettings.from_env()
    backends = Backends(settings)
    database = database_probe(settings)
    cache = (RedisProbe(settings.probe_cache_url, timeout=settings.probe_timeout)
             if settings.probe_cache_url else None)
    probes: dict[str, Probe] = {
        "database": database,
        "cache": cache or NotConfigured(
            CacheResult, "set BOTMON_PROBE_CACHE_URL or BOTMON_REDIS_URL to probe a cache"),
        "storage": StorageProbe(settings.probe_storage_path,
                                degraded_percent=health.storage_degraded_percent,
                                unhealthy_percent=health.storage_unhealthy_percent),
        "llm": LlmProbe(settings.probe_llm_url, timeout=settings.probe_timeout,
                        request_rate=PlatformTraffic(backends, timeout=settings.probe_timeout),
                        api_key=health.llm_api_key)
        if settings.probe_llm_url else NotConfigured(
            LlmResult, "set BOTMON_PROBE_LLM_URL to probe an OpenAI-compatible LLM server"),
    }
    instances = registry(settings, health)
    probes["export"] = ExportProbe(instances)
    prober = Prober(probes, interval=settings.probe_interval, timeout=settings.probe_timeout,
                    critical=health.critical)
    board = StatusBoard(settings, instances, prober, instance_id=settings.instance_id)
    view = StatusView(board, messages.status)
    servicer = HealthServicer(prober, view, instances, database=database, cache=cache,
                              critical=health.critical)
    return HealthServer(
        "health", settings,
        [Binding(SERVICE_NAME, servicer, health_service_pb2_grpc.add_HealthServiceServicer_to_server)],
        address=address, extra_settings=(health,), prober=prober, board=board, view=view,
        on_stop=[view.stop, board.stop, prober.stop, instances.close, backends.close])


if __name__ == "__main__":
    run_service("health", create_server)
