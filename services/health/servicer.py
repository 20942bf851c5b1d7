"""``botmon.health.v1.HealthService``: proto in, proto out."""

from __future__ import annotations

import time

from botmon.health.v1 import health_service_pb2, health_service_pb2_grpc
from botmon.runtime.errors import FailedPrecondition, InvalidArgument, NotFound
from services.health import messages
from services.health.prober import Prober
from services.health.probes.cache import RedisProbe
from services.health.probes.postgresql import PostgresProbe
from services.health.probes.sqlite import SqliteProbe
from services.health.registry import Registry
from services.health.status_view import StatusView

__all__ = ["HealthServicer"]


class HealthServicer(health_service_pb2_grpc.HealthServiceServicer):
    """Answers from the prober's cache, the status view, the registry and the probed servers."""

    def __init__(self, prober: Prober, view: StatusView[health_service_pb2.GetStatusResponse],
                 registry: Registry, *, database: PostgresProbe | SqliteProbe,
                 cache: RedisProbe | None, critical: tuple[str, ...]):
        self.prober = prober
        self.view = view
        self.registry = registry
        self.database = database
        self.cache = cache
        self.critical = critical

    async def GetHealth(self, request, context):
        return messages.health(await self.prober.current())

    async def GetDetailedHealth(self, request, context):
        return messages.detailed_health(await self.prober.current(), self.critical)

    async def WatchHealth(self, request, context):
        # This replica's status entry counts the watchers.
        self.view.changed()
        try:
            async for snapshot in self.prober.watch():
                yield health_service_pb2.WatchHealthResponse(
                    health=messages.detailed_health(snapshot, self.critical))
        finally:
            self.view.changed()

    async def GetStatus(self, request, context):
        return await self.view.current()

    async def WatchStatus(self, request, context):
        async for reply in self.view.watch():
            yield health_service_pb2.WatchStatusResponse(status=reply)

    async def Heartbeat(self, request, context):
        stored = await self.registry.heartbeat(messages.instance(request))
        self.view.changed()
        return health_service_pb2.HeartbeatResponse(
            expire_time=messages.timestamp(stored.expire_time))

    async def Deregister(self, request, context):
        for field in ("name", "instance_id"):
            if not getattr(request, field):
                raise InvalidArgument(f"{field} is required", field=field)
        if not await self.registry.deregister(request.name, request.instance_id,
                                              retain=request.retain_as_stopped):
            raise NotFound(f"no registration of {request.name!r} with instance_id "
                           f"{request.instance_id!r}")
        self.view.changed()
        return health_service_pb2.DeregisterResponse()

    async def GetDatabaseResources(self, request, context):
        return messages.database_resources(await self.database.resources(), time.time())

    async def GetCacheResources(self, request, context):
        if self.cache is None:
            raise FailedPrecondition(
                "no cache configured: set BOTMON_PROBE_CACHE_URL or BOTMON_REDIS_URL")
        return messages.cache_resources(await self.cache.resources(), time.time())
