"""Which rate-limit class a request falls in, and whose budget it spends (CONTRACT.md §4)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from sanic import Request

__all__ = ["client_ip", "rate_class", "rate_key"]

_BASE = "/api/v1/monitoring"
_INGEST = {("POST", f"{_BASE}/logs"), ("POST", f"{_BASE}/metrics/events"),
           ("POST", "/loki/api/v1/push"), ("POST", "/v1/logs")}


def rate_class(method: str, template: str) -> str:
    """The class of a route template: health, metrics, logs, alerts, ingest or default."""
    if (method, template) in _INGEST:
        return "ingest"
    path = template.removeprefix(_BASE)
    for prefix, name in (("/health", "health"), ("/metrics", "metrics"), ("/ws/metrics", "metrics"),
                         ("/logs", "logs"), ("/ws/logs", "logs"), ("/alerts", "alerts")):
        if path == prefix or path.startswith(prefix + "/"):
            return name
    return "default"


def client_ip(request: Request, trusted: Sequence) -> str:
    """The peer address, or the nearest untrusted ``X-Forwarded-For`` hop behind trusted proxies."""
    peer = request.conn_info.client_ip if request.conn_info else request.ip
    if not trusted or not _trusted(peer, trusted):
        return peer
    forwarded = ",".join(request.headers.getall("x-forwarded-for", []))
    hops = [h.strip() for h in forwarded.split(",") if h.strip()]
    # Walk from the nearest hop; the first address we do not trust is the client.
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            return hop if _valid(hop) else peer
    return hops[0] if hops and _valid(hops[0]) else peer


def rate_key(rate_class_name: str, ip: str, subject: str | None) -> str:
    """metrics is keyed by client IP; every other class by the caller's subject."""
    if rate_class_name == "metrics" or not subject:
        return f"ip:{ip}"
    return f"sub:{subject}"


def _valid(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def _trusted(address: str, networks: Sequence) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)
