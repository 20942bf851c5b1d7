"""URLs the suite fetches or prints: the host as the HTTP client will see it, and redaction.

``client_host`` judges a URL's host exactly as aiohttp (through yarl) will
normalise it before connecting, and refuses hosts that are not plain ASCII
names or address literals: ``１２７.0.0.1``, ``127。0。0。1`` and ``⑫⑦.0.0.1``
are all ``127.0.0.1`` to yarl, so a filter that judged the Unicode text would
be bypassed. ``redact_url`` / ``redact_text`` remove userinfo and secret query
parameters from every URL the suite shows (health reasons, logs, /debug/info).
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import yarl

__all__ = ["SECRET_PARAMETERS", "client_host", "redact_text", "redact_url"]

#: Query parameters whose value is a credential (compared case-insensitively, also as a
#: suffix after ``_`` or ``-``, so ``access_token`` and ``x-api-key`` count).
SECRET_PARAMETERS = ("token", "key", "apikey", "api_key", "password", "passwd", "pass",
                     "secret", "signature", "sig", "auth", "authorization", "credential",
                     "credentials")
_NAME = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252}[A-Za-z0-9_.])?$")
_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]{1,15}://[^\s\"'<>]+")
REDACTED = "***"


def client_host(url: str) -> str:
    """The host aiohttp will connect to for ``url``; raises ValueError saying what is wrong."""
    try:
        given = urlsplit(url).netloc.rpartition("@")[2]
    except ValueError as exc:
        raise ValueError(f"not a valid URL ({exc})") from None
    if not given.isascii():
        raise ValueError("the host must be plain ASCII (write an internationalised name in "
                         "its xn-- form)")
    try:
        host = yarl.URL(url).raw_host or ""
    except (ValueError, UnicodeError) as exc:
        raise ValueError(f"not a valid URL ({exc})") from None
    if not host:
        raise ValueError("the URL has no host")
    try:
        ipaddress.ip_address(host)
        return host.lower()
    except ValueError:
        pass
    if not _NAME.match(host):
        raise ValueError(f"host {host!r} is neither a host name nor an IP address")
    return host.lower()


def _secret_parameter(name: str) -> bool:
    lowered = name.lower()
    return any(lowered == p or lowered.endswith(("_" + p, "-" + p)) for p in SECRET_PARAMETERS)


def redact_url(url: str, *, every_parameter: bool = False) -> str:
    """``url`` without its userinfo and with secret query parameters' values replaced
    (every parameter's value with ``every_parameter``, as configuration is shown)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        hidden = [every_parameter or _secret_parameter(k) for k, _ in pairs]
        if any(hidden):
            query = urlencode([(k, REDACTED if h else v)
                               for (k, v), h in zip(pairs, hidden, strict=True)], safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def redact_text(text: str) -> str:
    """``text`` with every URL in it redacted by :func:`redact_url`."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
