"""Settings of the health service beyond the suite's own (CONTRACT.md §2)."""

from __future__ import annotations

from dataclasses import dataclass

from botmon.runtime.config import ConfigError, EnvSettings, positive_float, setting

__all__ = ["COMPONENTS", "HealthSettings"]

#: The probed components, as the API document keys them.
COMPONENTS = ("database", "cache", "storage", "llm")


def component_set(raw: str) -> tuple[str, ...]:
    """Parse ``database,cache`` (or ``none``) into component names."""
    names = {p.strip().lower() for p in raw.split(",") if p.strip()}
    if names == {"none"}:
        return ()
    unknown = sorted(names - set(COMPONENTS))
    if unknown:
        raise ValueError(f"unknown component {', '.join(map(repr, unknown))}; "
                         f"expected a comma-separated subset of {', '.join(COMPONENTS)} or none")
    return tuple(c for c in COMPONENTS if c in names)


def percent(raw: str) -> float:
    value = positive_float(raw)
    if value >= 100:
        raise ValueError(f"must be below 100, got {raw!r}")
    return value


@dataclass(frozen=True)
class HealthSettings(EnvSettings):
    """Criticality, thresholds and registry retention of the health service."""

    critical: tuple[str, ...] = setting(
        "BOTMON_HEALTH_CRITICAL", ("database",), component_set,
        doc="components whose failure makes the whole unhealthy (others only degrade it); "
            "comma separated, or none")
    storage_degraded_percent: float = setting(
        "BOTMON_HEALTH_STORAGE_DEGRADED_PERCENT", 10.0, percent,
        doc="storage is degraded when less than this share of its filesystem is free")
    storage_unhealthy_percent: float = setting(
        "BOTMON_HEALTH_STORAGE_UNHEALTHY_PERCENT", 2.0, percent,
        doc="storage is unhealthy when less than this share of its filesystem is free")
    stopped_retention: float = setting(
        "BOTMON_HEALTH_STOPPED_RETENTION", 10.0, positive_float,
        doc="a lapsed registration stays listed as stopped for this many TTLs, then is dropped")
    llm_api_key: str | None = setting(
        "BOTMON_PROBE_LLM_API_KEY", None, secret=True,
        doc="bearer token sent with GET /v1/models to the LLM server")

    def _derived(self) -> HealthSettings:
        if self.storage_unhealthy_percent >= self.storage_degraded_percent:
            raise ConfigError(
                "BOTMON_HEALTH_STORAGE_UNHEALTHY_PERCENT: must be below "
                f"BOTMON_HEALTH_STORAGE_DEGRADED_PERCENT ({self.storage_degraded_percent:g}), "
                f"got {self.storage_unhealthy_percent:g}")
        if self.stopped_retention < 1:
            raise ConfigError("BOTMON_HEALTH_STOPPED_RETENTION: must be at least 1 (TTLs), "
                              f"got {self.stopped_retention:g}")
        return self
