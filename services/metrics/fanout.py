"""Commit announcements between metrics replicas over Redis pub/sub.

Replicas share one store, so the figures are the same everywhere; what each
replica caches (its :class:`Snapshot`) is what must learn of events committed
elsewhere. After each commit a replica publishes its id; the others mark their
figures stale and refresh them (at most once per minimum refresh interval), so
their streams soon show the new events. Without Redis, or while it is down,
each replica still sees every commit within the snapshot's TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from botmon.runtime.pubsub import channel_name

__all__ = ["Fanout", "default_channel"]

log = logging.getLogger("botmon.metrics.fanout")

_TIMEOUT = 2.0
_MAX_BACKOFF = 5.0


def default_channel(redis_url: str | None) -> str:
    """The commit channel of the metrics replicas sharing ``redis_url``'s database."""
    return channel_name(redis_url, "metrics:committed")


class Fanout:
    """Publishes this replica's commits on ``channel`` and calls ``on_remote`` for other
    replicas' commits."""

    def __init__(self, redis_url: str | None, on_remote: Callable[[], None], channel: str):
        self.redis_url = redis_url
        self.on_remote = on_remote
        self.channel = channel
        self.replica = uuid.uuid4().hex
        self.client: aioredis.Redis | None = None
        self.connected = False
        self.received = 0
        self._listener: asyncio.Task | None = None
        self._publisher: asyncio.Task | None = None
        self._again = False
        self._reported_down = False

    async def start(self) -> None:
        if not self.redis_url:
            return
        self.client = aioredis.from_url(self.redis_url, socket_connect_timeout=_TIMEOUT,
                                        socket_timeout=_TIMEOUT)
        self._listener = asyncio.create_task(self._listen(), name="metrics-fanout")

    def announce(self, events: int) -> None:
        """Publish a commit; commits during a publish collapse into one more publish."""
        if self.client is None or not events:
            return
        if self._publisher and not self._publisher.done():
            self._again = True
            return
        self._publisher = asyncio.create_task(self._publish())

    async def _publish(self) -> None:
        while True:
            self._again = False
            try:
                await asyncio.wait_for(self.client.publish(self.channel, self.replica), _TIMEOUT)
            except (RedisError, OSError, TimeoutError) as exc:
                log.debug("commit announcement lost", extra={"error": repr(exc)})
            if not self._again:
                return

    async def _listen(self) -> None:
        backoff = 0.1
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await asyncio.wait_for(pubsub.subscribe(self.channel), _TIMEOUT)
                if not self.connected:
                    log.info("sharing commits with other replicas over Redis")
                self.connected, backoff, self._reported_down = True, 0.1, False
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message and message.get("data") != self.replica.encode():
                        self.received += 1
                        self.on_remote()
            except (RedisError, OSError, TimeoutError) as exc:
                if self.connected or not self._reported_down:
                    self._reported_down = True
                    log.warning("Redis unreachable; live figures from other replicas lag by "
                                "up to the snapshot TTL", extra={"error": repr(exc)})
                self.connected = False
            finally:
                with contextlib.suppress(RedisError, OSError, TimeoutError):
                    await asyncio.wait_for(pubsub.aclose(), _TIMEOUT)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)

    async def stop(self) -> None:
        for task in (self._listener, self._publisher):
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.client is not None:
            with contextlib.suppress(RedisError, OSError):
                await self.client.aclose()
            self.client = None
