"""Who may call what, as CONTRACT.md §3 words it — written out here, not read from the gateway."""

from __future__ import annotations

__all__ = ["BASE", "PUBLIC", "ROLES", "expected_role", "rank"]

BASE = "/api/v1/monitoring"
ROLES = ("viewer", "operator", "admin")
#: "every REST route except GET /health, /health/live and /health/ready"; and the console's
#: files (§12: the token is typed into the page, so the page loads without one).
PUBLIC = frozenset({f"{BASE}/health", f"{BASE}/health/live", f"{BASE}/health/ready",
                    "/ui", "/ui/", "/ui/{path}"})


def expected_role(method: str, template: str) -> str | None:
    """The lowest role the contract lets call ``method template``; None for the public probes."""
    if method.upper() == "GET" and template in PUBLIC:
        return None
    if template.removeprefix(BASE).startswith("/debug/"):
        return "admin"
    # viewer: every GET and the WebSocket streams; operator: the writes.
    return "viewer" if method.upper() == "GET" else "operator"


def rank(role: str) -> int:
    return ROLES.index(role)
