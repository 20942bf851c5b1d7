"""``X-Forwarded-For`` is believed only from ``BOTMON_TRUSTED_PROXIES``.

The metrics class is keyed by client IP (CONTRACT §4), so whose budget a request
spends shows which address the gateway believed: the Redis keys
``botmon:rl:metrics:ip:<address>`` name it outright.
"""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from tests.harness import Suite

FAKE = "203.0.113.50"


async def keys(redis_url: str) -> set[str]:
    client = aioredis.from_url(redis_url, socket_timeout=5)
    try:
        return {k.decode() for k in await client.keys("botmon:rl:metrics:*")}
    finally:
        await client.aclose()


def make(make_settings, redis_url, trusted: str | None):
    environ = {"BOTMON_RATE_LIMITS": "metrics=2/minute"}
    if trusted:
        environ["BOTMON_TRUSTED_PROXIES"] = trusted
    return Suite(make_settings(environ, redis_url=redis_url), components=(), rate_limited=True)


async def metrics(http, suite, forwarded: str | None) -> int:
    headers = suite.headers("viewer")
    if forwarded is not None:
        headers["X-Forwarded-For"] = forwarded
    return (await http.get(f"{suite.base}/metrics", headers=headers)).status_code


@pytest.mark.parametrize("trusted", [None, "10.0.0.0/8", "192.0.2.1/32,::1/128"])
async def test_forwarded_for_from_an_untrusted_peer_is_ignored(make_settings, redis_url, http,
                                                               trusted):
    async with make(make_settings, redis_url, trusted) as suite:
        statuses = [await metrics(http, suite, f) for f in (FAKE, "198.51.100.1", None)]
    # One budget, the peer's: two allowed (503, no backend runs), the third refused.
    assert statuses == [503, 503, 429]
    assert await keys(redis_url) == {"botmon:rl:metrics:ip:127.0.0.1"}


async def test_forwarded_for_from_a_trusted_proxy_names_the_client(make_settings, redis_url,
                                                                   http):
    async with make(make_settings, redis_url, "127.0.0.0/8,10.0.0.0/8") as suite:
        first = [await metrics(http, suite, FAKE) for _ in range(3)]
        other = await metrics(http, suite, "198.51.100.1")
        # A chain: the client spoofed the left-most hop; the nearest untrusted hop is believed.
        spoofed = await metrics(http, suite, f"192.0.2.99, {FAKE}, 10.1.2.3")
        # Nothing usable forwarded: the peer itself is the client.
        garbage = await metrics(http, suite, "not-an-address")
    assert first == [503, 503, 429]
    assert other == 503
    assert spoofed == 429  # spent FAKE's budget, not 192.0.2.99's
    assert garbage == 503
    assert await keys(redis_url) == {f"botmon:rl:metrics:ip:{FAKE}",
                                     "botmon:rl:metrics:ip:198.51.100.1",
                                     "botmon:rl:metrics:ip:127.0.0.1"}


async def test_subject_keyed_classes_ignore_forwarded_for(make_settings, redis_url, http):
    environ = {"BOTMON_RATE_LIMITS": "alerts=2/minute", "BOTMON_TRUSTED_PROXIES": "127.0.0.0/8"}
    async with Suite(make_settings(environ, redis_url=redis_url), components=(),
                     rate_limited=True) as suite:
        statuses = []
        for address in ("203.0.113.1", "203.0.113.2", "203.0.113.3"):
            r = await http.get(f"{suite.base}/alerts", headers={
                **suite.headers("viewer"), "X-Forwarded-For": address})
            statuses.append(r.status_code)
    assert statuses == [503, 503, 429]
