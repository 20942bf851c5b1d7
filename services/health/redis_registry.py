"""The registry in Redis, so that every health replica lists the same services."""

from __future__ import annotations

import dataclasses
import json
import time

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from botmon.runtime.errors import Unavailable
from services.health.registry import Instance, Registry

__all__ = ["RedisRegistry"]

_FIELDS = ("name", "instance_id", "status", "version", "host")
_NUMBERS = ("port", "pid")
_TIMES = ("ttl", "last_heartbeat")


class RedisRegistry(Registry):
    """A hash per registration, expiring when it is to be dropped, and a sorted set
    indexing them by that drop time (so listing needs no SCAN).

    Heartbeat times are this process's wall clock, as replicas share no other.
    """

    kind = "redis"

    def __init__(self, url: str, *, retention: float, timeout: float,
                 prefix: str = "botmon:health:registry"):
        super().__init__(retention=retention)
        self.index = f"{prefix}:index"
        self.version_key = f"{prefix}:version"
        self.prefix = prefix
        self.timeout = timeout
        self.client = aioredis.Redis.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout,
            retry=Retry(NoBackoff(), 1), decode_responses=True)

    def _key(self, member: str) -> str:
        return f"{self.prefix}:instance:{member}"

    @staticmethod
    def _member(name: str, instance_id: str) -> str:
        # JSON keeps any name unambiguous, whatever separators it contains.
        return json.dumps([name, instance_id])

    async def _put(self, instance: Instance, now: float) -> Instance:
        member = self._member(instance.name, instance.instance_id)
        key = self._key(member)
        stored = dataclasses.replace(instance, last_heartbeat=now, stopped_at=None)
        drop_at = self.drop_time(stored)
        mapping = {f: getattr(stored, f) for f in (*_FIELDS, *_NUMBERS, *_TIMES)}
        mapping["details"] = json.dumps(stored.details)
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping=mapping)
                pipe.hdel(key, "stopped_at")
                if instance.start_time:
                    pipe.hset(key, "start_time", instance.start_time)
                else:
                    pipe.hsetnx(key, "start_time", now)
                pipe.pexpireat(key, int(drop_at * 1000))
                pipe.zadd(self.index, {member: drop_at})
                pipe.incr(self.version_key)
                pipe.hget(key, "start_time")
                *_, start = await pipe.execute()
        except (OSError, RedisError) as exc:
            raise Unavailable(f"registry Redis unreachable: {exc}") from None
        return dataclasses.replace(stored, start_time=float(start))

    async def _mark_stopped(self, name: str, instance_id: str, now: float) -> bool:
        member = self._member(name, instance_id)
        key = self._key(member)
        try:
            fields = await self.client.hgetall(key)
            if not fields:
                return False
            if fields.get("stopped_at"):
                return True
            drop_at = self.drop_time(dataclasses.replace(self._instance(fields), stopped_at=now))
            async with self.client.pipeline(transaction=True) as pipe:
                # A concurrent Deregister wins: the index entry is only updated (xx).
                pipe.hsetnx(key, "stopped_at", now)
                pipe.pexpireat(key, int(drop_at * 1000))
                pipe.zadd(self.index, {member: drop_at}, xx=True)
                pipe.incr(self.version_key)
                await pipe.execute()
        except (OSError, RedisError) as exc:
            raise Unavailable(f"registry Redis unreachable: {exc}") from None
        return True

    async def _remove(self, name: str, instance_id: str) -> bool:
        member = self._member(name, instance_id)
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.delete(self._key(member))
                pipe.zrem(self.index, member)
                pipe.incr(self.version_key)
                deleted, *_ = await pipe.execute()
        except (OSError, RedisError) as exc:
            raise Unavailable(f"registry Redis unreachable: {exc}") from None
        return bool(deleted)

    async def instances(self, now: float | None = None) -> list[Instance]:
        now = time.time() if now is None else now
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.zremrangebyscore(self.index, "-inf", now)
                pipe.zrange(self.index, 0, -1)
                _, members = await pipe.execute()
            async with self.client.pipeline(transaction=False) as pipe:
                for member in members:
                    pipe.hgetall(self._key(member))
                hashes = await pipe.execute()
            gone = [m for m, h in zip(members, hashes, strict=True) if not h]
            if gone:
                await self.client.zrem(self.index, *gone)
        except (OSError, RedisError) as exc:
            raise Unavailable(f"registry Redis unreachable: {exc}") from None
        return [self._instance(h).as_of(now) for h in hashes if h]

    async def version(self) -> int:
        try:
            return int(await self.client.get(self.version_key) or 0)
        except (OSError, RedisError) as exc:
            raise Unavailable(f"registry Redis unreachable: {exc}") from None

    @staticmethod
    def _instance(fields: dict[str, str]) -> Instance:
        return Instance(
            **{f: fields.get(f, "") for f in _FIELDS},
            **{f: int(fields.get(f) or 0) for f in _NUMBERS},
            **{f: float(fields.get(f) or 0) for f in _TIMES},
            start_time=float(fields["start_time"]) if fields.get("start_time") else None,
            stopped_at=float(fields["stopped_at"]) if fields.get("stopped_at") else None,
            details=json.loads(fields.get("details") or "{}"))

    async def close(self) -> None:
        await self.client.aclose()
