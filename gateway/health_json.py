"""Detailed health in the IETF health-check response format (draft-inadarei-api-health-check).

Served for ``GET /health/detailed`` when the client sends
``Accept: application/health+json``; checks are keyed ``component:measurement``.
"""

from __future__ import annotations

from typing import Any

from botmon import __version__
from botmon.health.v1 import health_service_pb2
from gateway.convert import message_to_json

__all__ = ["CONTENT_TYPE", "health_json", "http_status", "wants_health_json"]

CONTENT_TYPE = "application/health+json"

_STATUS = {"healthy": "pass", "degraded": "warn", "unhealthy": "fail"}
_TYPES = {"database": "datastore", "cache": "datastore", "storage": "system", "llm": "component",
          "export": "component"}
# (measurement, field of the component, unit) reported for each component.
_MEASUREMENTS = {
    "database": (("responseTime", "latency_ms", "ms"),
                 ("connections", "connection_pool.active", "connections")),
    "cache": (("responseTime", "latency_ms", "ms"), ("memoryUsage", "memory_used_mb", "MB"),
              ("hitRate", "hit_rate", "ratio")),
    "storage": (("responseTime", "latency_ms", "ms"), ("availableSpace", "available_gb", "GB"),
                ("usedSpace", "used_gb", "GB")),
    "llm": (("responseTime", "latency_ms", "ms"), ("modelLoaded", "model_loaded", "boolean"),
            ("requestsPerSecond", "requests_per_second", "requests/s")),
    "export": (("failingDestinations", "failing_destinations", "destinations"),),
}


def wants_health_json(accept: str | None) -> bool:
    """True when the Accept header asks for ``application/health+json``."""
    return bool(accept) and CONTENT_TYPE in accept.lower()


def _get(data: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        data = (data or {}).get(part)
    return data


def health_json(response: health_service_pb2.GetDetailedHealthResponse) -> dict[str, Any]:
    """The IETF document for a detailed health response."""
    components = message_to_json(response.components) if response.HasField("components") else {}
    checks: dict[str, list[dict[str, Any]]] = {}
    notes = list(response.notes)
    for name, measurements in _MEASUREMENTS.items():
        component = components.get(name)
        if not component:
            continue
        if component["status"] == "not_configured":
            notes.append(f"{name} is not configured")
            continue
        for measurement, field, unit in measurements:
            check = {"componentId": name, "componentType": _TYPES[name],
                     "observedValue": _get(component, field), "observedUnit": unit,
                     "status": _STATUS.get(component["status"], "fail"),
                     "time": component.get("checked_at")}
            if component.get("reason"):
                check["output"] = component["reason"]
            checks[f"{name}:{measurement}"] = [check]
    status = _STATUS.get(response.status, "fail")
    doc: dict[str, Any] = {
        "status": status,
        "version": __version__.split(".")[0],
        "releaseId": __version__,
        "serviceId": "botmon",
        "description": "botmon monitoring API",
        "checks": checks,
    }
    if notes:
        doc["notes"] = notes
    if status != "pass":
        doc["output"] = "; ".join(f"{name}: {c.get('reason') or c.get('status')}"
                                  for name, c in components.items()
                                  if c and c.get("status") not in ("healthy", "not_configured"))
    return doc


def http_status(doc: dict[str, Any]) -> int:
    """2xx for pass and warn, 503 for fail, as the draft asks."""
    return 503 if doc["status"] == "fail" else 200
