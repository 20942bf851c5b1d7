"""Who evaluates and notifies: exactly one replica at a time.

PostgreSQL store: a session-level advisory lock held on a dedicated
connection (released by the server the moment that connection dies). Redis:
a lease (set when free, extended when held, by one script) of 1.5 intervals. SQLite alone:
this process, since an embedded store is not shared by replicas.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from typing import Protocol

import asyncpg
import redis.asyncio as aioredis

__all__ = ["LocalLeadership", "Leadership", "PostgresLeadership", "RedisLeadership"]

log = logging.getLogger("botmon.alerts.leader")

#: Key of the advisory lock (one per PostgreSQL database, so one per store).
LOCK_KEY = 0x616C657274730002

# Take the lease when free, extend it when ours: one atomic step, whatever this replica
# believes, so a renewal whose reply was lost does not lock its own holder out until
# the lease lapses.
_ACQUIRE = """
local holder = redis.call('get', KEYS[1])
if holder == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
if not holder then
  redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class Leadership(Protocol):
    kind: str

    async def acquire(self) -> bool:
        """Become or stay the leader; True while this replica leads."""

    async def release(self) -> None:
        """Step down so another replica can take over at once."""


class LocalLeadership:
    """The only evaluator of an embedded store."""

    kind = "local"

    async def acquire(self) -> bool:
        return True

    async def release(self) -> None:
        return None


class PostgresLeadership:
    """``pg_try_advisory_lock`` on a connection of its own, checked on every call."""

    kind = "postgresql"

    def __init__(self, dsn: str, timeout: float):
        self.dsn = dsn
        self.timeout = timeout
        self._conn: asyncpg.Connection | None = None
        self._leading = False

    async def acquire(self) -> bool:
        try:
            if self._conn is None or self._conn.is_closed():
                self._leading = False
                self._conn = await asyncpg.connect(self.dsn, timeout=self.timeout)
            if self._leading:
                # The lock lives as long as the session; a dead session means it is gone.
                await self._conn.fetchval("SELECT 1", timeout=self.timeout)
            else:
                self._leading = bool(await self._conn.fetchval(
                    "SELECT pg_try_advisory_lock($1)", LOCK_KEY, timeout=self.timeout))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            log.warning("advisory lock check failed", extra={"error": str(exc)})
            await self._drop()
        return self._leading

    async def _drop(self) -> None:
        self._leading = False
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None

    async def release(self) -> None:
        if self._conn is not None and not self._conn.is_closed():
            try:
                await self._conn.close(timeout=self.timeout)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                self._conn.terminate()
        self._conn = None
        self._leading = False


class RedisLeadership:
    """A lease of ``ttl`` seconds, renewed only by its holder."""

    kind = "redis"

    def __init__(self, url: str, store_url: str, ttl: float, timeout: float):
        # One lease per store: suites sharing a Redis but not a store do not contend.
        self.key = "botmon:alerts:leader:" + hashlib.sha256(store_url.encode()).hexdigest()[:16]
        self.ttl_ms = max(1, int(ttl * 1000))
        self.token = uuid.uuid4().hex
        self._redis = aioredis.Redis.from_url(url, socket_timeout=timeout,
                                              socket_connect_timeout=timeout)
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._release = self._redis.register_script(_RELEASE)
        self._leading = False

    async def acquire(self) -> bool:
        try:
            self._leading = bool(await self._acquire(keys=[self.key],
                                                     args=[self.token, self.ttl_ms]))
        except (aioredis.RedisError, OSError, TimeoutError) as exc:
            log.warning("lease renewal failed", extra={"error": str(exc)})
            self._leading = False
        return self._leading

    async def release(self) -> None:
        try:
            if self._leading:
                await self._release(keys=[self.key], args=[self.token])
        except (aioredis.RedisError, OSError, TimeoutError):
            pass
        finally:
            self._leading = False
            await self._redis.aclose()
