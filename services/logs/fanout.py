"""Cross-replica tails over Redis pub/sub.

Each replica publishes the entries it commits on ``channel`` and delivers the
entries other replicas publish to its own tails. To keep ingest cheap when
nobody tails, a replica subscribes to ``channel`` only while it has live tails
and publishes only while ``PUBSUB NUMSUB`` shows another replica subscribed;
a replica that starts listening announces itself on ``<channel>:hello`` (which
every replica always watches) so publishers start at once instead of at their
next count. Publishing happens on a background task through a bounded queue:
ingest never waits for Redis. When Redis is unreachable, tails keep working
per replica, the bridge retries every second and ``state`` says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from services.logs.row import Row
from services.logs.tail import TailHub

__all__ = ["RedisFanout"]

log = logging.getLogger("botmon.logs.fanout")

_COUNT_INTERVAL = 1.0
_POLL = 0.2
_QUEUE = 256


def encode(origin: str, rows: list[Row]) -> str:
    return json.dumps({"o": origin, "e": [[r.id, r.ts, r.level, r.service, r.message,
                                           r.metadata] for r in rows]},
                      separators=(",", ":"))


def decode(data: bytes | str) -> tuple[str, list[Row]]:
    message = json.loads(data)
    return message["o"], [Row(*e) for e in message["e"]]


class RedisFanout:
    """Bridges the local :class:`TailHub` with the other replicas' through Redis."""

    def __init__(self, url: str, channel: str, hub: TailHub, origin: str, *,
                 timeout: float = 2.0):
        self.url = url
        self.channel = channel
        self.hello = f"{channel}:hello"
        self.hub = hub
        self.origin = origin
        self.timeout = timeout
        self.state = "starting"
        self.published = 0
        self.received = 0
        self.dropped = 0
        self._others_listen = False
        self._outbox: asyncio.Queue[list[Row]] = asyncio.Queue(_QUEUE)
        self._tasks: list[asyncio.Task] = []
        self._client = aioredis.from_url(url, socket_timeout=timeout,
                                         socket_connect_timeout=timeout)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._listen(), name="logs-fanout-listen"),
                       asyncio.create_task(self._send(), name="logs-fanout-send")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._client.aclose()

    @property
    def wanted(self) -> bool:
        """Whether another replica has live tails (else publishing is skipped)."""
        return self._others_listen

    def publish(self, rows: list[Row]) -> None:
        """Queue committed rows for the other replicas; never blocks."""
        try:
            self._outbox.put_nowait(rows)
        except asyncio.QueueFull:
            self.dropped += len(rows)

    def _degraded(self, exc: Exception) -> None:
        if self.state != "degraded":
            log.warning("Redis fan-out unavailable, tails see this replica's entries only: %s",
                        exc)
        self.state = "degraded"

    async def _send(self) -> None:
        counted = 0.0
        while True:
            try:
                rows = await asyncio.wait_for(self._outbox.get(), _COUNT_INTERVAL)
            except TimeoutError:
                rows = None
            try:
                if rows:
                    await asyncio.wait_for(
                        self._client.publish(self.channel, encode(self.origin, rows)),
                        self.timeout)
                    self.published += len(rows)
                if time.monotonic() - counted >= _COUNT_INTERVAL:
                    counted = time.monotonic()
                    await self._count_listeners()
            except (RedisError, OSError, TimeoutError) as exc:
                if rows:
                    self.dropped += len(rows)
                self._degraded(exc)

    async def _count_listeners(self) -> None:
        numsub = await asyncio.wait_for(self._client.pubsub_numsub(self.channel), self.timeout)
        listeners = numsub[0][1] if numsub else 0
        mine = 1 if len(self.hub) else 0
        self._others_listen = listeners - mine > 0

    async def _listen(self) -> None:
        while True:
            pubsub = self._client.pubsub()
            try:
                await asyncio.wait_for(pubsub.subscribe(self.hello), self.timeout)
                self.state = "connected"
                await self._relay(pubsub)
            except (RedisError, OSError, TimeoutError) as exc:
                self._degraded(exc)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _relay(self, pubsub) -> None:
        subscribed = False
        while True:
            want = len(self.hub) > 0
            if want and not subscribed:
                await asyncio.wait_for(pubsub.subscribe(self.channel), self.timeout)
                await asyncio.wait_for(self._client.publish(self.hello, self.origin),
                                       self.timeout)
                subscribed = True
            elif subscribed and not want:
                await asyncio.wait_for(pubsub.unsubscribe(self.channel), self.timeout)
                subscribed = False
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=_POLL)
            if message is None:
                continue
            channel = message["channel"].decode() if isinstance(message["channel"], bytes) \
                else message["channel"]
            if channel == self.hello:
                data = message["data"]
                if (data.decode() if isinstance(data, bytes) else data) != self.origin:
                    self._others_listen = True
                continue
            origin, rows = decode(message["data"])
            if origin != self.origin:
                self.received += len(rows)
                self.hub.publish(rows)
