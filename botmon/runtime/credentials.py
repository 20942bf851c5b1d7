"""Bearer credentials, checked the same way by the gateway and by every gRPC port.

One statement of the rules (CONTRACT.md §3, §11): static tokens compared in
constant time, HS256/RS256 JWTs with ``sub``, ``role`` and a bounded ``exp``
(plus ``iss``/``aud`` when configured), and the internal credential that the
suite's own processes present, the only caller whose identity metadata
(``x-botmon-subject``, ``x-botmon-role``) is believed.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import jwt

from botmon.runtime.audit import DataDirOutbox
from botmon.runtime.config import ROLES, ApiToken, Settings
from botmon.runtime.datadir import private_dir

__all__ = [
    "INTERNAL_SUBJECT",
    "MAX_SUBJECT_CHARS",
    "ROLE_HEADER",
    "SUBJECT_HEADER",
    "CredentialError",
    "Credentials",
    "Principal",
    "bearer_token",
    "bootstrap_admin_token",
    "internal_token",
]

log = logging.getLogger("botmon.credentials")

ADMIN_TOKEN_FILE = "admin-token"
INTERNAL_TOKEN_FILE = "internal-token"
#: gRPC metadata by which the internal credential's holder names the caller it acts for.
SUBJECT_HEADER = "x-botmon-subject"
ROLE_HEADER = "x-botmon-role"
#: The subject of the suite's own calls made on nobody's behalf (heartbeats, evaluations).
INTERNAL_SUBJECT = "botmon"
#: Longest JWT ``sub`` accepted.
MAX_SUBJECT_CHARS = 256
#: Verified JWTs remembered (until their ``exp``) so a client's next call skips the crypto.
VERIFIED_JWTS = 4096


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token subject or JWT ``sub``, with its role."""

    subject: str
    role: str

    def allows(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


class CredentialError(Exception):
    """No usable credential; ``given`` tells a missing one from a bad one."""

    def __init__(self, message: str, given: bool):
        super().__init__(message)
        self.message = message
        self.given = given


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if any."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class Credentials:
    """Checks bearer tokens against the configured tokens, JWT keys and internal token."""

    def __init__(self, settings: Settings, tokens: tuple[ApiToken, ...],
                 internal: str | None = None):
        self.tokens = tokens
        self.internal = internal.encode() if internal else None
        self.jwt_keys: dict[str, str] = {}
        if settings.jwt_secret:
            self.jwt_keys["HS256"] = settings.jwt_secret
        if settings.jwt_public_key:
            self.jwt_keys["RS256"] = settings.jwt_public_key
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self.max_lifetime = settings.jwt_max_lifetime
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    @classmethod
    def for_process(cls, settings: Settings) -> Credentials:
        """This process's credentials: the configured ones, or the data dir's bootstrap ones."""
        return cls(settings, bootstrap_admin_token(settings), internal_token(settings))

    @property
    def tokens(self) -> tuple[ApiToken, ...]:
        return self._tokens

    @tokens.setter
    def tokens(self, tokens: tuple[ApiToken, ...]) -> None:
        self._tokens = tokens
        # Encoded and resolved once: the check runs on every request and every RPC.
        self._static = [(t.token.encode(), Principal(t.subject, t.role)) for t in tokens]

    def is_internal(self, token: str | None) -> bool:
        """True for the suite's internal credential (compared in constant time)."""
        return bool(token) and self.internal is not None \
            and hmac.compare_digest(self.internal, token.encode())

    def authenticate(self, token: str | None) -> Principal:
        """The caller behind ``token``; raises :class:`CredentialError` if there is none."""
        if not token:
            raise CredentialError("missing credentials: send Authorization: Bearer <token>",
                                  False)
        match = None
        given = token.encode()
        # Compare against every token so the time taken does not reveal which one matched.
        for candidate, principal in self._static:
            if hmac.compare_digest(candidate, given):
                match = principal
        if match is not None:
            return match
        if token.count(".") == 2 and self.jwt_keys:
            return self._jwt(token)
        raise CredentialError("invalid token", True)

    def _jwt(self, token: str) -> Principal:
        """A JWT's caller; one verified before is looked up until its ``exp`` passes."""
        known = self._verified.get(token)
        if known is not None and time.time() < known[1]:
            return known[0]
        principal, expires = self._verify_jwt(token)
        self._verified[token] = (principal, expires)
        if len(self._verified) > VERIFIED_JWTS:
            self._verified.popitem(last=False)
        return principal

    def _verify_jwt(self, token: str) -> tuple[Principal, float]:
        try:
            alg = jwt.get_unverified_header(token).get("alg")
        except jwt.InvalidTokenError:
            raise CredentialError("malformed JWT", True) from None
        key = self.jwt_keys.get(alg)
        if key is None:
            raise CredentialError(f"JWT algorithm {alg!r} is not accepted; use "
                                  + " or ".join(self.jwt_keys), True)
        required = ["exp", "sub", *(["iss"] if self.issuer else []),
                    *(["aud"] if self.audience else [])]
        try:
            claims = jwt.decode(token, key, algorithms=[alg], issuer=self.issuer,
                                audience=self.audience, leeway=5,
                                options={"require": required, "verify_aud": bool(self.audience)})
        except jwt.ExpiredSignatureError:
            raise CredentialError("JWT has expired", True) from None
        except jwt.MissingRequiredClaimError as exc:
            raise CredentialError(f"JWT lacks the {exc.claim!r} claim", True) from None
        except jwt.InvalidIssuerError:
            raise CredentialError(f"JWT 'iss' claim must be {self.issuer!r}", True) from None
        except jwt.InvalidAudienceError:
            raise CredentialError(f"JWT 'aud' claim must include {self.audience!r}",
                                  True) from None
        except jwt.InvalidTokenError as exc:
            raise CredentialError(f"invalid JWT: {exc}", True) from None
        self._check_lifetime(claims)
        role = claims.get("role")
        if role not in ROLES:
            raise CredentialError(f"JWT 'role' claim must be one of {', '.join(ROLES)}", True)
        subject = str(claims["sub"])
        # The subject travels in gRPC metadata and rate-limit keys, both of bounded size.
        if not subject or len(subject) > MAX_SUBJECT_CHARS:
            raise CredentialError(f"JWT 'sub' claim must be 1 to {MAX_SUBJECT_CHARS} "
                                  "characters", True)
        # nbf needs no remembering: a token not yet valid is refused, so never cached.
        return Principal(subject, role), float(claims["exp"])

    def _check_lifetime(self, claims: dict) -> None:
        """``exp`` at most ``max_lifetime`` after ``iat``, or after now if that is earlier."""
        now = time.time()
        issued = claims.get("iat")
        # A future iat must not stretch the window: an exp in 9999 with an iat an hour
        # before it is still a token valid for millennia from now.
        start = min(issued, now) if isinstance(issued, int | float) else now
        if claims["exp"] - start > self.max_lifetime + 5:
            raise CredentialError(f"JWT lifetime exceeds BOTMON_JWT_MAX_LIFETIME "
                                  f"({self.max_lifetime:g} s)", True)


def _bootstrap_secret(path: Path, resource: str) -> tuple[str, bool]:
    """The secret in ``path``, created (mode 0600) and audited if absent; True when created now.

    The audit record is written first, so no secret exists without one; a crash between
    the two leaves a record of a secret that the next start then makes.
    """
    if path.exists():
        return path.read_text().strip(), False
    private_dir(path.parent)
    token = secrets.token_urlsafe(32)
    # The secret's value is never recorded, not even masked: only where it is kept.
    record = DataDirOutbox(path.parent).add(
        subject=INTERNAL_SUBJECT, role="admin", action="token.bootstrapped", resource=resource,
        changes={"file": str(path.resolve())})
    # O_EXCL: two processes starting at once must not overwrite each other's secret.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        record.unlink()  # the other process made it, with its own record
        return _bootstrap_secret(path, resource)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token, True


def bootstrap_admin_token(settings: Settings) -> tuple[ApiToken, ...]:
    """The configured tokens; with no credentials at all, the data dir's admin token.

    On first start the token is created with mode 0600 and printed once; later
    starts reuse it without printing the secret again. The gateway and every
    service read the same file, so the token works on REST and gRPC alike.
    """
    if settings.api_tokens or settings.jwt_secret or settings.jwt_public_key:
        return settings.api_tokens
    path = Path(settings.data_dir) / ADMIN_TOKEN_FILE
    token, created = _bootstrap_secret(path, "tokens/admin")
    if created:
        print(f"botmon: created an admin token (stored in {path}): {token}", file=sys.stdout,
              flush=True)
    else:
        log.info("no credentials configured; using the admin token in %s", path)
    return (ApiToken(token, "admin", "admin"),)


def internal_token(settings: Settings) -> str:
    """``BOTMON_INTERNAL_TOKEN``, or the data dir's own (shared by processes on one host)."""
    if settings.internal_token:
        return settings.internal_token
    path = Path(settings.data_dir) / INTERNAL_TOKEN_FILE
    token, created = _bootstrap_secret(path, "tokens/internal")
    if created:
        log.info("BOTMON_INTERNAL_TOKEN is unset; created one in %s for the processes "
                 "sharing this data dir", path)
    return token
