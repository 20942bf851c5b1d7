"""Resource figures of the probed database and cache (``/resources/*``)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CacheResources", "DatabaseResources"]


@dataclass(frozen=True)
class DatabaseResources:
    """Connection and query figures of the probed database."""

    backend: str
    max_connections: int = 0
    active_connections: int = 0
    idle_connections: int = 0
    waiting_requests: int = 0
    total_created: int = 0
    total_closed: int = 0
    active_queries: int = 0
    slow_queries: int = 0
    average_duration_ms: float = 0.0


@dataclass(frozen=True)
class CacheResources:
    """Figures of Redis ``INFO``; ``memory_limit_mb`` is None when Redis has no maxmemory."""

    hits: int
    misses: int
    hit_rate: float
    evictions: int
    memory_used_mb: float
    memory_limit_mb: float | None
    keys_count: int
