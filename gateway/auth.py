"""Bearer authentication at the edge: the shared credentials, as HTTP 401/403/429.

The credentials themselves are checked by :mod:`botmon.runtime.credentials`, the
same code every gRPC port runs. A route's role is its RPC's row in
:mod:`botmon.runtime.roles`; the gateway's own routes (docs, streams, probes)
need viewer for reads and operator for writes (CONTRACT.md §3). Failed
authentication is limited per client IP (class ``auth_failures``).
"""

from __future__ import annotations

import time
from collections import OrderedDict

from botmon.runtime import roles
from botmon.runtime.config import ApiToken, Settings
from botmon.runtime.credentials import (
    MAX_SUBJECT_CHARS,
    CredentialError,
    Credentials,
    Principal,
    bearer_token,
    bootstrap_admin_token,
)
from gateway.errors import GatewayError
from gateway.ratelimit import RateLimiter

__all__ = [
    "MAX_SUBJECT_CHARS",
    "PUBLIC_PATHS",
    "Authenticator",
    "FailedLogins",
    "Principal",
    "bearer_token",
    "required_role",
]

BASE = "/api/v1/monitoring"
#: Answered without credentials, for load balancers and probes.
PUBLIC_PATHS = frozenset({f"{BASE}/health", f"{BASE}/health/live", f"{BASE}/health/ready"})
#: Rate-limit class of failed authentications, keyed by client IP.
AUTH_FAILURES = "auth_failures"
#: Client IPs remembered as blocked at once; the oldest are forgotten first.
MAX_BLOCKED = 100_000


def required_role(method: str, path: str, rpc_path: str | None = None) -> str:
    """The table's role for an RPC's route; else viewer for reads, operator for writes."""
    if rpc_path is not None:
        # An RPC without a row is refused by its service anyway: ask for the most.
        return roles.required_role(rpc_path) or "admin"
    if path.startswith(f"{BASE}/debug") or path.startswith("/debug"):
        return "admin"
    return "viewer" if method in ("GET", "HEAD", "OPTIONS") else "operator"


def _challenge(message: str, token_given: bool) -> GatewayError:
    value = 'Bearer realm="botmon"'
    if token_given:
        value += f', error="invalid_token", error_description="{message}"'
    return GatewayError(401, message, headers={"WWW-Authenticate": value})


class Authenticator:
    """The shared :class:`Credentials`, answering 401 with a ``WWW-Authenticate`` challenge."""

    def __init__(self, settings: Settings):
        self.credentials = Credentials(settings, bootstrap_admin_token(settings))

    @property
    def tokens(self) -> tuple[ApiToken, ...]:
        return self.credentials.tokens

    @tokens.setter
    def tokens(self, tokens: tuple[ApiToken, ...]) -> None:
        self.credentials.tokens = tokens

    def authenticate(self, token: str | None) -> Principal:
        """The caller behind ``token``; raises a 401 ``GatewayError`` if there is none."""
        try:
            return self.credentials.authenticate(token)
        except CredentialError as exc:
            raise _challenge(exc.message, exc.given) from None


class FailedLogins:
    """Per-IP budget of failed authentications; an IP over it is refused before any check.

    Failures are counted by the shared limiter (exact across replicas). Once an IP
    is refused it stays refused here until its ``Retry-After`` passes, even with a
    good credential, so a guesser cannot tell a hit from a miss by the status.
    """

    def __init__(self, limiter: RateLimiter):
        self.limiter = limiter
        self.blocked: OrderedDict[str, float] = OrderedDict()

    @property
    def active(self) -> bool:
        return self.limiter.rate(AUTH_FAILURES).limit > 0

    def check(self, ip: str) -> None:
        """Raise 429 if ``ip`` is still blocked."""
        until = self.blocked.get(ip)
        if until is None:
            return
        wait = until - time.monotonic()
        if wait <= 0:
            del self.blocked[ip]
            return
        raise self._refusal(max(1, round(wait + 0.5)))

    async def failed(self, ip: str, error: GatewayError) -> GatewayError:
        """Count a failure of ``ip``: the 401 to answer, or a 429 once over the budget."""
        decision = await self.limiter.check(AUTH_FAILURES, f"ip:{ip}")
        if decision.allowed:
            return error
        self.blocked[ip] = time.monotonic() + decision.retry_after
        self.blocked.move_to_end(ip)
        while len(self.blocked) > MAX_BLOCKED:
            self.blocked.popitem(last=False)
        return self._refusal(decision.retry_after, decision.headers())

    @staticmethod
    def _refusal(retry_after: int, headers: dict[str, str] | None = None) -> GatewayError:
        return GatewayError(429, f"too many failed authentications from this address; retry "
                                 f"in {retry_after}s",
                            headers={**(headers or {}), "Retry-After": str(retry_after)})
