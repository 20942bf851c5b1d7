"""Redis probe: PING latency, INFO memory, hit rate and version."""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from botmon.runtime.errors import Unavailable
from services.health.probes.probe import describe, elapsed_ms, url_port
from services.health.probes.resources import CacheResources
from services.health.probes.result import HEALTHY, CacheResult

__all__ = ["RedisProbe"]

MB = 1e6


def hit_rate(info: dict) -> float:
    """keyspace_hits / (hits + misses); 0 before the first lookup."""
    hits, misses = info.get("keyspace_hits", 0), info.get("keyspace_misses", 0)
    return round(hits / (hits + misses), 6) if hits + misses else 0.0


class RedisProbe:
    """Probes one Redis server."""

    result_type = CacheResult

    def __init__(self, url: str, *, timeout: float):
        self.url = url
        self.timeout = timeout
        self.port = 0 if url.startswith("unix") else url_port(url, 6379)
        self._client: aioredis.Redis | None = None

    def _redis(self) -> aioredis.Redis:
        if self._client is None:
            # No retries: a refused connection is the probe's answer, not something to hide.
            self._client = aioredis.Redis.from_url(
                self.url, socket_connect_timeout=self.timeout, socket_timeout=self.timeout,
                retry=Retry(NoBackoff(), 0), max_connections=4)
        return self._client

    async def check(self) -> CacheResult:
        client = self._redis()
        start = time.perf_counter()
        await client.ping()
        latency = elapsed_ms(start)
        info = await client.info()
        return CacheResult(
            status=HEALTHY, latency_ms=latency, port=self.port,
            version=str(info.get("redis_version", "")),
            started_at=time.time() - info.get("uptime_in_seconds", 0),
            memory_used_mb=round(info.get("used_memory", 0) / MB, 3), hit_rate=hit_rate(info))

    async def resources(self) -> CacheResources:
        """Figures of INFO, read now; Unavailable when Redis does not answer."""
        try:
            async with asyncio.timeout(self.timeout):
                info = await self._redis().info()
        except TimeoutError:
            raise Unavailable(f"cache did not answer within {self.timeout:g}s") from None
        except (OSError, RedisError) as exc:
            raise Unavailable(f"cache unreachable: {describe(exc)}") from None
        limit = info.get("maxmemory", 0)
        return CacheResources(
            hits=info.get("keyspace_hits", 0), misses=info.get("keyspace_misses", 0),
            hit_rate=hit_rate(info), evictions=info.get("evicted_keys", 0),
            memory_used_mb=round(info.get("used_memory", 0) / MB, 3),
            memory_limit_mb=round(limit / MB, 3) if limit else None,
            keys_count=sum(v.get("keys", 0) for k, v in info.items()
                           if k.startswith("db") and isinstance(v, dict)))

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
