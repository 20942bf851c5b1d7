"""Commit announcements over Redis: a channel per database, so suites sharing one Redis
server on different databases never hear each other."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

from services.metrics.fanout import Fanout, default_channel


def test_the_default_channel_names_the_database():
    assert default_channel("redis://127.0.0.1:6379/3") == "botmon:3:metrics:committed"
    assert default_channel("redis://127.0.0.1:6379") == "botmon:0:metrics:committed"
    assert default_channel("redis://127.0.0.1:6379/0?db=5") == "botmon:5:metrics:committed"
    assert default_channel(None) == "botmon:0:metrics:committed"


async def test_replicas_on_another_database_do_not_hear_the_commits(redis_url):
    base, _, db = redis_url.rpartition("/")
    # Pub/sub ignores the database, so nothing is written there: only the channel differs.
    other = f"{base}/{(int(db) + 1) % 16}"
    heard: Counter[str] = Counter()
    fanouts = {name: Fanout(url, lambda name=name: heard.update([name]), default_channel(url))
               for name, url in (("a", redis_url), ("b", redis_url), ("c", other))}
    async with contextlib.AsyncExitStack() as stack:
        for fanout in fanouts.values():
            await fanout.start()
            stack.push_async_callback(fanout.stop)
        for _ in range(100):
            if all(f.connected for f in fanouts.values()):
                break
            await asyncio.sleep(0.02)
        fanouts["a"].announce(10)
        for _ in range(100):
            if heard["b"]:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # time enough for a stray announcement to arrive too
    assert heard == Counter({"b": 1})
