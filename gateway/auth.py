"""Bearer authentication (static tokens, HS256/RS256 JWTs) and the three roles.

The role a request needs is derived from its method and path, so a route added
to the protos is covered without touching this module: reads need viewer,
writes operator, ``/debug`` admin (CONTRACT.md §3).
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

import jwt

from botmon.runtime.config import ROLES, ApiToken, Settings
from botmon.runtime.datadir import private_dir
from gateway.errors import GatewayError

__all__ = [
    "MAX_SUBJECT_CHARS",
    "PUBLIC_PATHS",
    "Authenticator",
    "Principal",
    "bootstrap_admin_token",
    "required_role",
]

log = logging.getLogger("botmon.gateway.auth")

BASE = "/api/v1/monitoring"
#: Answered without credentials, for load balancers and probes.
PUBLIC_PATHS = frozenset({f"{BASE}/health", f"{BASE}/health/live", f"{BASE}/health/ready"})
ADMIN_TOKEN_FILE = "admin-token"
#: Longest JWT ``sub`` accepted.
MAX_SUBJECT_CHARS = 256


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token subject or JWT ``sub``, with its role."""

    subject: str
    role: str

    def allows(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


def required_role(method: str, path: str) -> str:
    """viewer for reads and streams, operator for writes, admin for debug routes."""
    if path.startswith(f"{BASE}/debug") or path.startswith("/debug"):
        return "admin"
    return "viewer" if method in ("GET", "HEAD", "OPTIONS") else "operator"


def _challenge(message: str, token_given: bool) -> GatewayError:
    value = 'Bearer realm="botmon"'
    if token_given:
        value += f', error="invalid_token", error_description="{message}"'
    return GatewayError(401, message, headers={"WWW-Authenticate": value})


class Authenticator:
    """Checks bearer credentials against the configured tokens and JWT keys."""

    def __init__(self, settings: Settings, tokens: tuple[ApiToken, ...]):
        self.tokens = tokens
        self.jwt_keys: dict[str, str] = {}
        if settings.jwt_secret:
            self.jwt_keys["HS256"] = settings.jwt_secret
        if settings.jwt_public_key:
            self.jwt_keys["RS256"] = settings.jwt_public_key

    def authenticate(self, token: str | None) -> Principal:
        """The caller behind ``token``; raises a 401 ``GatewayError`` if there is none."""
        if not token:
            raise _challenge("missing credentials: send Authorization: Bearer <token>", False)
        match = None
        # Compare against every token so the time taken does not reveal which one matched.
        for candidate in self.tokens:
            if hmac.compare_digest(candidate.token.encode(), token.encode()):
                match = candidate
        if match is not None:
            return Principal(match.subject, match.role)
        if token.count(".") == 2 and self.jwt_keys:
            return self._jwt(token)
        raise _challenge("invalid token", True)

    def _jwt(self, token: str) -> Principal:
        try:
            alg = jwt.get_unverified_header(token).get("alg")
        except jwt.InvalidTokenError:
            raise _challenge("malformed JWT", True) from None
        key = self.jwt_keys.get(alg)
        if key is None:
            raise _challenge(f"JWT algorithm {alg!r} is not accepted; use "
                             + " or ".join(self.jwt_keys), True)
        try:
            claims = jwt.decode(token, key, algorithms=[alg],
                                options={"require": ["exp", "sub"]}, leeway=5)
        except jwt.ExpiredSignatureError:
            raise _challenge("JWT has expired", True) from None
        except jwt.MissingRequiredClaimError as exc:
            raise _challenge(f"JWT lacks the {exc.claim!r} claim", True) from None
        except jwt.InvalidTokenError as exc:
            raise _challenge(f"invalid JWT: {exc}", True) from None
        role = claims.get("role")
        if role not in ROLES:
            raise _challenge(f"JWT 'role' claim must be one of {', '.join(ROLES)}", True)
        subject = str(claims["sub"])
        # The subject travels in gRPC metadata and rate-limit keys, both of bounded size.
        if not subject or len(subject) > MAX_SUBJECT_CHARS:
            raise _challenge(f"JWT 'sub' claim must be 1 to {MAX_SUBJECT_CHARS} characters",
                             True)
        return Principal(subject, role)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if any."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def bootstrap_admin_token(settings: Settings) -> tuple[ApiToken, ...]:
    """The configured tokens; with no credentials at all, the data dir's admin token.

    On first start the token is created with mode 0600 and printed once; later
    starts reuse it without printing the secret again.
    """
    if settings.api_tokens or settings.jwt_secret or settings.jwt_public_key:
        return settings.api_tokens
    path = Path(settings.data_dir) / ADMIN_TOKEN_FILE
    if path.exists():
        token = path.read_text().strip()
        log.info("no credentials configured; using the admin token in %s", path)
        return (ApiToken(token, "admin", "admin"),)
    private_dir(path.parent)
    token = secrets.token_urlsafe(32)
    # O_EXCL: two gateways starting at once must not overwrite each other's token.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return bootstrap_admin_token(settings)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    print(f"botmon: created an admin token (stored in {path}): {token}", file=sys.stdout,
          flush=True)
    return (ApiToken(token, "admin", "admin"),)
