"""Sliding-window-log rate limiting, exact in Redis (shared) or in process (fallback).

A check is allowed while fewer than ``limit`` requests were allowed for the same
class and key in the last ``window_seconds`` (half-open: a request made exactly
one window ago no longer counts). In Redis one Lua script does the whole check
atomically on a sorted set ``botmon:rl:<class>:<key>``, timed by the Redis
server's own clock, so every gateway replica sharing that Redis enforces one
exact budget whatever their clocks say.

Response headers (:meth:`Decision.headers`):

- ``X-RateLimit-Limit``: requests allowed per window.
- ``X-RateLimit-Remaining``: requests still allowed now.
- ``X-RateLimit-Reset``: a **delta in seconds** (rounded up) until the oldest
  counted request leaves the window and a slot frees; not an epoch timestamp.
  This matches the ``t`` parameter of the IETF draft.
- ``RateLimit-Policy: "<class>";q=<limit>;w=<window>`` and
  ``RateLimit: "<class>";r=<remaining>;t=<reset>`` as in
  draft-ietf-httpapi-ratelimit-headers-08 and later (structured fields, the
  policy name an sf-string).
- ``Retry-After`` (whole seconds, at least 1) on a refusal.

An unlimited class (limit 0) gives no headers. When Redis cannot be reached the
decision is ``degraded``: fail-open allows (remaining = limit, reset 0, since
nothing is counted); fail-closed refuses until the next attempt to reach Redis.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import count

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError, ResponseError

from botmon.runtime.config import Rate, Settings

__all__ = [
    "Decision",
    "MemoryLimiter",
    "PipelinedScript",
    "RateLimiter",
    "RedisLimiter",
    "create_limiter",
]

log = logging.getLogger(__name__)

# A dead or blackholed Redis must cost a request at most a fraction of a second.
CONNECT_TIMEOUT = 0.25
READ_TIMEOUT = 0.25
POOL_TIMEOUT = 0.5
# The client's CPU, not Redis, bounds throughput, so a few connections suffice;
# opening many at once during a burst is what would exceed the connect timeout.
MAX_CONNECTIONS = 16
MAX_BATCH = 128
RETRY_INTERVAL = 1.0

# KEYS[1] the key's sorted set; ARGV: limit, window (µs), unique member, and an
# optional time (µs) that replaces the server's TIME for deterministic tests.
# TIME before writes is allowed because Redis 7 replicates script effects.
SLIDING_WINDOW_LUA = """
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local now = tonumber(ARGV[4])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[1])
local allowed = 0
if used < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  used = used + 1
  allowed = 1
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
return {allowed, used, tonumber(oldest[2]) + window - now}
"""


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one check, with the figures its response headers show."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: float
    retry_after: int
    rate_class: str = "default"
    window_seconds: int = 0
    degraded: bool = False

    @property
    def policy(self) -> str:
        """The quota as ``<limit>;w=<window>``, e.g. ``60;w=60``."""
        return f"{self.limit};w={self.window_seconds}"

    def headers(self) -> dict[str, str]:
        """Rate-limit response headers; empty for an unlimited class."""
        if self.limit == 0:
            return {}
        reset = math.ceil(self.reset_seconds)
        name = _sf_string(self.rate_class)
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(reset),
            "RateLimit-Policy": f"{name};q={self.limit};w={self.window_seconds}",
            "RateLimit": f"{name};r={self.remaining};t={reset}",
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


def _sf_string(value: str) -> str:
    """``value`` as an RFC 9651 sf-string (printable ASCII, quoted, escaped)."""
    printable = "".join(c if " " <= c <= "~" else "_" for c in value)
    return '"' + printable.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _measured(rate_class: str, rate: Rate, allowed: bool, used: int,
              reset_seconds: float) -> Decision:
    reset_seconds = min(max(reset_seconds, 0.0), float(rate.window_seconds))
    return Decision(allowed=allowed, limit=rate.limit, remaining=max(rate.limit - used, 0),
                    reset_seconds=reset_seconds,
                    retry_after=0 if allowed else max(1, math.ceil(reset_seconds)),
                    rate_class=rate_class, window_seconds=rate.window_seconds)


class RateLimiter:
    """Common surface: ``check``, counters, backend state; subclasses decide."""

    backend = ""

    def __init__(self, rates: Mapping[str, Rate]):
        self.rates = dict(rates)
        self._counters = {"allowed": 0, "limited": 0, "errors": 0}

    @property
    def counters(self) -> dict[str, int]:
        """Checks of limited classes: allowed, limited, and decided without the backend."""
        return dict(self._counters)

    #: True when checks are refused while the shared backend is failing.
    fails_closed = False

    @property
    def backend_down(self) -> bool:
        """True while the shared backend is failing and checks are decided without it."""
        return False

    @property
    def fail_open_active(self) -> bool:
        """True while requests are let through uncounted because the backend is failing."""
        return self.backend_down and not self.fails_closed

    def rate(self, rate_class: str) -> Rate:
        """The class's rate, or the ``default`` class's for an unknown one."""
        return self.rates.get(rate_class) or self.rates["default"]

    async def check(self, rate_class: str, key: str) -> Decision:
        """Count one request of ``key`` in ``rate_class`` if the window has room."""
        rate = self.rate(rate_class)
        if rate.limit == 0:
            return Decision(True, 0, 0, 0.0, 0, rate_class, rate.window_seconds)
        decision = await self._decide(rate_class, rate, key)
        if decision.degraded:
            self._counters["errors"] += 1
        else:
            self._counters["allowed" if decision.allowed else "limited"] += 1
        return decision

    async def _decide(self, rate_class: str, rate: Rate, key: str) -> Decision:
        raise NotImplementedError

    async def close(self) -> None:
        """Release the backend's resources."""


class MemoryLimiter(RateLimiter):
    """Per-process sliding window log; idle keys are evicted so memory stays bounded."""

    backend = "memory"

    def __init__(self, rates: Mapping[str, Rate], *,
                 clock: Callable[[], int] = time.monotonic_ns):
        super().__init__(rates)
        self._clock = clock
        # Per class, keys ordered by their newest entry (a refusal adds none and
        # does not move the key), so idle keys are always at the front.
        self._logs: dict[str, OrderedDict[str, deque[int]]] = {}

    async def _decide(self, rate_class: str, rate: Rate, key: str) -> Decision:
        # No await from here on: the check is atomic within the event loop.
        now = self._clock()
        window = rate.window_seconds * 1_000_000_000
        logs = self._logs.setdefault(rate_class, OrderedDict())
        entries = logs.get(key)
        if entries is None:
            entries = logs[key] = deque()
        while entries and entries[0] <= now - window:
            entries.popleft()
        allowed = len(entries) < rate.limit
        if allowed:
            entries.append(now)
            logs.move_to_end(key)
        self._evict_idle(logs, now - window)
        reset = (entries[0] + window - now) / 1e9
        return _measured(rate_class, rate, allowed, len(entries), reset)

    @staticmethod
    def _evict_idle(logs: OrderedDict[str, deque[int]], cutoff: int) -> None:
        while logs:
            entries = next(iter(logs.values()))
            if entries and entries[-1] > cutoff:
                return
            logs.popitem(last=False)

    def tracked_keys(self) -> int:
        """How many keys currently hold entries (for tests and debugging)."""
        return sum(len(logs) for logs in self._logs.values())

    async def close(self) -> None:
        self._logs.clear()


class PipelinedScript:
    """Runs one Lua script for many concurrent callers: one pipeline per loop iteration.

    Checks issued while the event loop runs one iteration (as under load) share a
    round trip instead of each paying redis-py's per-call overhead; each script
    still runs atomically, so batching changes nothing about exactness.
    """

    def __init__(self, client: aioredis.Redis, source: str):
        self._client = client
        self._source = source
        self._sha = hashlib.sha1(source.encode()).hexdigest()
        self._pending: list[tuple[str, tuple, asyncio.Future]] = []
        self._inflight: set[asyncio.Task] = set()

    async def __call__(self, key: str, *args: object) -> list:
        """The script's reply for ``key`` and ``args``; raises what Redis raised."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((key, args, future))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        for start in range(0, len(batch), MAX_BATCH):
            task = asyncio.create_task(self._send(batch[start:start + MAX_BATCH]))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _send(self, batch: list[tuple[str, tuple, asyncio.Future]]) -> None:
        try:
            replies = await self._execute(batch)
            missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
            if missing:
                # NOSCRIPT means the call did not run, so running it again counts nothing twice.
                await self._client.script_load(self._source)
                retried = await self._execute([batch[i] for i in missing])
                for i, reply in zip(missing, retried, strict=True):
                    replies[i] = reply
        except Exception as exc:
            replies = [exc] * len(batch)
        for (_, _, future), reply in zip(batch, replies, strict=True):
            if future.done():  # the caller was cancelled
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def _execute(self, batch: list[tuple[str, tuple, asyncio.Future]]) -> list:
        """Replies in order, a command's error in its place; connection errors raise."""
        if len(batch) == 1:  # a pipeline costs more than a plain call for one command
            key, args, _ = batch[0]
            try:
                return [await self._client.evalsha(self._sha, 1, key, *args)]
            except ResponseError as exc:
                return [exc]
        pipe = self._client.pipeline(transaction=False)
        for key, args, _ in batch:
            pipe.evalsha(self._sha, 1, key, *args)
        return await pipe.execute(raise_on_error=False)

    async def close(self) -> None:
        """Wait until every call made so far has its reply."""
        while self._pending or self._inflight:
            if self._inflight:
                await asyncio.gather(*self._inflight, return_exceptions=True)
            else:
                await asyncio.sleep(0)  # the scheduled flush has not run yet


class RedisLimiter(RateLimiter):
    """Sliding window log in Redis, shared by every replica; fails open or closed."""

    backend = "redis"

    def __init__(self, client: aioredis.Redis, rates: Mapping[str, Rate], *,
                 fail_closed: bool = False, retry_interval: float = RETRY_INTERVAL,
                 clock: Callable[[], int] | None = None):
        super().__init__(rates)
        self._client = client
        self._script = PipelinedScript(client, SLIDING_WINDOW_LUA)
        self.fails_closed = fail_closed
        self._retry_interval = retry_interval
        self._clock = clock
        self._member_prefix = uuid.uuid4().hex[:12]
        self._sequence = count()
        self._outage_since: float | None = None
        self._outage_checks = 0
        self._next_attempt = 0.0
        self._recovery: asyncio.Task | None = None

    @classmethod
    def from_url(cls, url: str, rates: Mapping[str, Rate], **options) -> RedisLimiter:
        """A limiter with its own bounded connection pool and short timeouts."""
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=MAX_CONNECTIONS, timeout=POOL_TIMEOUT,
            socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=READ_TIMEOUT,
            # Skipping CLIENT SETINFO saves two round trips per new connection.
            lib_name=None, lib_version=None,
            # No retries: a retried script could count one request twice, and a
            # failing Redis is handled by failing open or closed instead.
            retry=Retry(NoBackoff(), 0))
        return cls(aioredis.Redis.from_pool(pool), rates, **options)

    @property
    def backend_down(self) -> bool:
        return self._outage_since is not None

    async def _decide(self, rate_class: str, rate: Rate, key: str) -> Decision:
        if self._outage_since is not None and time.monotonic() < self._next_attempt:
            return self._without_redis(rate_class, rate)
        # During an outage only the first check after each interval tries Redis; the
        # others are decided without it, so a dead server is not hammered.
        started = time.monotonic()
        self._next_attempt = started + self._retry_interval
        member = f"{self._member_prefix}:{next(self._sequence)}"
        now = "" if self._clock is None else str(self._clock() // 1000)
        try:
            allowed, used, reset_us = await self._script(
                f"botmon:rl:{rate_class}:{key}", rate.limit, rate.window_seconds * 1_000_000,
                member, now)
        except (RedisError, OSError) as exc:
            self._record_failure(exc)
            return self._without_redis(rate_class, rate)
        self._record_success(started)
        return _measured(rate_class, rate, bool(allowed), int(used), int(reset_us) / 1e6)

    def _without_redis(self, rate_class: str, rate: Rate) -> Decision:
        self._outage_checks += 1
        if not self.fails_closed:
            return Decision(True, rate.limit, rate.limit, 0.0, 0, rate_class,
                            rate.window_seconds, degraded=True)
        wait = max(self._next_attempt - time.monotonic(), 0.0)
        return Decision(False, rate.limit, 0, wait, max(1, math.ceil(wait)), rate_class,
                        rate.window_seconds, degraded=True)

    def _record_failure(self, exc: BaseException) -> None:
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            self._outage_checks = 0
            log.warning("rate limiter cannot use Redis (%s: %s); failing %s until it answers",
                        type(exc).__name__, exc, "closed" if self.fails_closed else "open")
            # Recovery is noticed even by a replica that gets no limited traffic meanwhile.
            self._recovery = asyncio.create_task(self._await_recovery(),
                                                 name="ratelimit-redis-recovery")

    async def _await_recovery(self) -> None:
        while self._outage_since is not None:
            await asyncio.sleep(self._retry_interval)
            started = time.monotonic()
            try:
                await self._client.ping()
            except (RedisError, OSError):
                continue
            self._record_success(started)

    def _record_success(self, started: float) -> None:
        # A reply to a call sent before the outage began says nothing about recovery.
        if self._outage_since is not None and started >= self._outage_since:
            log.info("rate limiter reached Redis again after %.1f s; %d checks were decided "
                     "without it", time.monotonic() - self._outage_since, self._outage_checks)
            self._outage_since = None

    async def close(self) -> None:
        if self._recovery is not None:
            self._recovery.cancel()
            await asyncio.gather(self._recovery, return_exceptions=True)
        await self._script.close()
        await self._client.aclose()


def create_limiter(settings: Settings, *, retry_interval: float = RETRY_INTERVAL) -> RateLimiter:
    """The shared Redis limiter when ``BOTMON_REDIS_URL`` is set, else a per-process one."""
    if settings.redis_url:
        return RedisLimiter.from_url(settings.redis_url, settings.rate_limits,
                                     fail_closed=settings.rate_limit_fail == "closed",
                                     retry_interval=retry_interval)
    log.warning("rate limits are per process; set BOTMON_REDIS_URL to share them")
    return MemoryLimiter(settings.rate_limits)
