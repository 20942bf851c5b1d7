"""Names of the Redis pub/sub channels the services fan out on."""

from __future__ import annotations

from redis.connection import parse_url

__all__ = ["channel_name"]


def channel_name(redis_url: str | None, topic: str) -> str:
    """``botmon:<db>:<topic>``: pub/sub ignores database numbers, so suites sharing one
    Redis server on different databases would otherwise hear each other."""
    db = parse_url(redis_url).get("db", 0) if redis_url else 0
    return f"botmon:{db}:{topic}"
