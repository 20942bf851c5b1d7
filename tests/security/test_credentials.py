"""Bearer credentials: static tokens in constant time, and pinned, time-checked JWTs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

import botmon.runtime.credentials
from tests.harness import Suite

SECRET = "hs256-secret-for-the-security-tests-" + "0123456789abcdef" * 2
STATIC = "static-operator-token-0123456789abcdef"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claims(**extra) -> dict:
    now = int(time.time())
    return {"sub": "mallory", "role": "admin", "exp": now + 60, **extra}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict, payload: dict, key: bytes = b"") -> str:
    """A JWT assembled by hand (PyJWT refuses to make the malicious ones)."""
    head = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = hmac.new(key, head.encode(), hashlib.sha256).digest() if key else b""
    return f"{head}.{b64(signature)}"


@pytest.fixture
async def both(make_settings, rsa_keys):
    """A gateway accepting a static token, HS256 and RS256."""
    settings = make_settings({"BOTMON_API_TOKENS": f"{STATIC}:operator:ops"},
                             jwt_secret=SECRET, jwt_public_key=rsa_keys[1])
    async with Suite(settings, components=()) as suite:
        yield suite


@pytest.fixture
async def rs256_only(make_settings, rsa_keys):
    async with Suite(make_settings(jwt_public_key=rsa_keys[1]), components=()) as suite:
        yield suite


async def status(http, suite, token: str, path: str = "/alerts/rules") -> tuple[int, str]:
    r = await http.get(f"{suite.base}{path}", headers=bearer(token))
    message = r.json()["error"]["message"] if r.status_code >= 400 else ""
    if r.status_code == 401:
        assert r.headers["www-authenticate"].startswith("Bearer")
    return r.status_code, message


# ---------------------------------------------------------------- static tokens

@pytest.mark.parametrize("guess", [
    STATIC[:-1] + ("0" if STATIC[-1] != "0" else "1"),   # all but the last character
    STATIC[:-1],                                          # a prefix
    STATIC + "0",                                         # the token plus one character
    STATIC.upper(),                                       # case changed
    " " + STATIC + "x",
    STATIC[1:],
])
async def test_near_miss_static_tokens_are_refused(both, http, guess):
    assert await status(http, both, guess) == (401, "invalid token")


async def test_static_tokens_are_compared_with_compare_digest_against_every_one(
        both, http, monkeypatch):
    """The code path: hmac.compare_digest, once per configured token, match or not."""
    compared = []
    real = hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(botmon.runtime.credentials.hmac, "compare_digest", spy)
    configured = len(both.app.ctx.authenticator.tokens)
    assert (await status(http, both, STATIC))[0] not in (401, 403)  # 503: no backend runs
    assert len(compared) == configured
    compared.clear()
    assert (await status(http, both, STATIC[:-1] + "!"))[0] == 401
    assert len(compared) == configured
    assert all(b == (STATIC[:-1] + "!").encode() for _, b in compared)


# ---------------------------------------------------------------- JWT time claims

# Offsets from the moment the test runs (not from collection, minutes earlier).
@pytest.mark.parametrize(("offsets", "fragment"), [
    ({"exp": -60}, "expired"),
    ({"nbf": 120}, "not yet valid"),
    ({"nbf": 3600, "exp": 7200}, "not yet valid"),
])
async def test_jwt_outside_its_validity_is_refused(both, http, offsets, fragment):
    now = int(time.time())
    extra = {claim: now + offset for claim, offset in offsets.items()}
    token = jwt.encode(claims(**extra), SECRET, algorithm="HS256")
    code, message = await status(http, both, token)
    assert code == 401 and fragment in message, message


async def test_small_clock_skew_is_tolerated(both, http):
    """A few seconds of skew between issuer and gateway must not lock users out."""
    now = int(time.time())
    for extra in ({"nbf": now + 2}, {"exp": now - 2}, {"iat": now + 2}):
        token = jwt.encode(claims(**extra), SECRET, algorithm="HS256")
        assert (await status(http, both, token))[0] != 401, extra


async def test_jwt_without_exp_is_refused(both, http):
    token = jwt.encode({"sub": "a", "role": "admin"}, SECRET, algorithm="HS256")
    code, message = await status(http, both, token)
    assert code == 401 and "'exp'" in message


# ---------------------------------------------------------------- algorithm pinning

@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
async def test_unsigned_jwts_are_refused(both, http, alg):
    token = forged({"alg": alg, "typ": "JWT"}, claims())
    assert (await status(http, both, token))[0] == 401


async def test_hs256_signed_with_the_rs256_public_key_is_refused(both, rs256_only, http,
                                                                 rsa_keys):
    token = forged({"alg": "HS256", "typ": "JWT"}, claims(), rsa_keys[1].encode())
    for suite in (both, rs256_only):
        code, message = await status(http, suite, token)
        assert code == 401, (suite, message)
    # With only a public key configured, HS256 is not an accepted algorithm at all.
    assert "not accepted" in (await status(http, rs256_only, token))[1]


async def test_other_algorithms_are_refused(both, http, rsa_keys):
    ec_key = ec.generate_private_key(ec.SECP256R1())
    tokens = {
        "HS384": jwt.encode(claims(), SECRET, algorithm="HS384"),
        "HS512": jwt.encode(claims(), SECRET, algorithm="HS512"),
        "RS512": jwt.encode(claims(), rsa_keys[0], algorithm="RS512"),
        "PS256": jwt.encode(claims(), rsa_keys[0], algorithm="PS256"),
        "ES256": jwt.encode(claims(), ec_key, algorithm="ES256"),
    }
    for alg, token in tokens.items():
        code, message = await status(http, both, token)
        assert code == 401 and "not accepted" in message, (alg, message)


async def test_header_claims_cannot_redirect_key_lookup(both, http, rsa_keys):
    """jku/x5u/jwk/kid in the header are ignored: the keys are the configured ones only."""
    for header in ({"alg": "HS256", "kid": "../../etc/passwd"},
                   {"alg": "HS256", "jku": "http://127.0.0.1:1/keys"},
                   {"alg": "HS256", "jwk": {"kty": "oct", "k": b64(b"attacker")}}):
        token = forged({**header, "typ": "JWT"}, claims(), b"attacker")
        assert (await status(http, both, token))[0] == 401, header


async def test_signature_of_a_valid_token_cannot_be_reused_with_other_claims(both, http):
    good = jwt.encode(claims(role="viewer"), SECRET, algorithm="HS256")
    head, _, signature = good.split(".")
    escalated = b64(json.dumps(claims(role="admin")).encode())
    code, _ = await status(http, both, f"{head}.{escalated}.{signature}", "/debug/info")
    assert code == 401
    assert (await status(http, both, good, "/debug/info"))[0] == 403
