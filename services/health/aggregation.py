"""The overall status: the worst of the configured components, weighed by criticality."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from services.health.probes.result import DEGRADED, HEALTHY, UNHEALTHY

__all__ = ["overall"]

_RANK = {HEALTHY: 0, DEGRADED: 1, UNHEALTHY: 2}


def overall(statuses: Mapping[str, str], critical: Collection[str]) -> str:
    """Worst status, where a non-critical component that is down only degrades the whole.

    ``not_configured`` (any status outside healthy/degraded/unhealthy) does not count.
    """
    worst = HEALTHY
    for component, status in statuses.items():
        if status not in _RANK:
            continue
        if status == UNHEALTHY and component not in critical:
            status = DEGRADED
        if _RANK[status] > _RANK[worst]:
            worst = status
    return worst
