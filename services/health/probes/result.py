"""What a probe reports: a status, why, how long it took, and its figures."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEGRADED",
    "HEALTHY",
    "NOT_CONFIGURED",
    "UNHEALTHY",
    "CacheResult",
    "DatabaseResult",
    "LlmResult",
    "ProbeResult",
    "StorageResult",
]

HEALTHY = "healthy"
DEGRADED = "degraded"
UNHEALTHY = "unhealthy"
NOT_CONFIGURED = "not_configured"


@dataclass(frozen=True)
class ProbeResult:
    """Figures every probe reports; times are Unix seconds."""

    status: str = HEALTHY
    reason: str = ""
    latency_ms: float = 0.0
    probe_duration_ms: float = 0.0
    checked_at: float = 0.0
    #: Port of the probed server; 0 when it has none (a file, a Unix socket).
    port: int = 0
    #: Version the probed server reports.
    version: str = ""
    #: When the probed server started; None when it does not say.
    started_at: float | None = None


@dataclass(frozen=True)
class DatabaseResult(ProbeResult):
    """The database's connection figures."""

    backend: str = ""
    active: int = 0
    idle: int = 0
    max: int = 0


@dataclass(frozen=True)
class CacheResult(ProbeResult):
    """Redis memory and hit rate."""

    memory_used_mb: float = 0.0
    hit_rate: float = 0.0


@dataclass(frozen=True)
class StorageResult(ProbeResult):
    """Space of the filesystem that holds ``path``, in GB of 10^9 bytes."""

    path: str = ""
    available_gb: float = 0.0
    used_gb: float = 0.0
    total_gb: float = 0.0


@dataclass(frozen=True)
class LlmResult(ProbeResult):
    """Whether the LLM server has a model, and the platform's request rate."""

    model_loaded: bool = False
    model: str = ""
    requests_per_second: float = 0.0
