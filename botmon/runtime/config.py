"""Settings read once at start from the environment (or a TOML file), frozen.

Every variable is declared once, with its parser, default and meaning; the
precedence is argument > environment > ``BOTMON_CONFIG`` file > default. A bad
value raises :class:`ConfigError` whose one-line message names the variable.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import os
import socket
import tomllib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

from cryptography.fernet import Fernet

from botmon.runtime.urls import client_host, redact_url

__all__ = [
    "ApiToken",
    "ConfigError",
    "EnvSettings",
    "Rate",
    "Settings",
    "setting",
]

ROLES = ("viewer", "operator", "admin")


class ConfigError(ValueError):
    """A setting has a bad value; the message names the variable."""


@dataclass(frozen=True)
class Rate:
    """A rate limit: ``limit`` requests per ``window_seconds``; limit 0 is unlimited."""

    limit: int
    window_seconds: int

    def __str__(self) -> str:
        return f"{self.limit}/{self.window_seconds}s"


@dataclass(frozen=True)
class ApiToken:
    """A static bearer token with its role and subject."""

    token: str
    role: str
    subject: str

    def __repr__(self) -> str:
        return f"ApiToken(role={self.role!r}, subject={self.subject!r})"


def setting(env: str, default: Any = None, parse: Callable[[str], Any] = str, *,
            secret: bool = False, doc: str = "") -> Any:
    """Declare a dataclass field read from environment variable ``env``."""
    return field(default=default, metadata={"env": env, "parse": parse, "secret": secret,
                                            "doc": doc})


# Parsers: each takes the raw string and raises ValueError with what to fix.

def parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def positive_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"expected a number, got {raw!r}") from None
    if not value > 0:
        raise ValueError(f"must be greater than 0, got {raw!r}")
    return value


def positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"expected a whole number, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"must be greater than 0, got {raw!r}")
    return value


def instance_name(raw: str) -> str:
    value = raw.strip()
    if not 0 < len(value) <= 256:
        raise ValueError(f"expected 1 to 256 characters, got {len(value)}")
    return value


def address(raw: str) -> str:
    """Validate ``host:port`` (IPv6 hosts in brackets); port 0 picks a free one."""
    host, sep, port = raw.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected host:port, got {raw!r}")
    if not port.isdecimal() or not 0 <= int(port) <= 65535:
        raise ValueError(f"port must be 0-65535, got {port!r}")
    return raw


def one_of(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {raw!r}")
        return value
    return parse


def url(*schemes: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        scheme = raw.split("://", 1)[0].lower() if "://" in raw else ""
        if scheme not in schemes:
            raise ValueError(f"expected a {' or '.join(s + '://' for s in schemes)} URL, got "
                             f"{redact_url(raw)!r}")
        if scheme in ("http", "https"):
            client_host(raw)  # the host as the HTTP client will see it: ASCII, well formed
        return raw
    return parse


_WINDOWS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def parse_rates(raw: str) -> dict[str, Rate]:
    """Parse ``metrics=60/minute,logs=30/minute``; ``unlimited`` or ``0`` disables."""
    rates: dict[str, Rate] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        name, sep, spec = part.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"expected class=N/unit, got {part!r}")
        spec = spec.strip().lower()
        if spec in ("unlimited", "0"):
            rates[name.strip()] = Rate(0, 1)
            continue
        count, slash, unit = spec.partition("/")
        if not slash or not count.isdecimal() or unit not in _WINDOWS:
            raise ValueError(f"expected N/second|minute|hour|day for {name.strip()!r}, got {spec!r}")
        rates[name.strip()] = Rate(int(count), _WINDOWS[unit])
    return rates


DEFAULT_RATES = ("health=unlimited,metrics=60/minute,logs=30/minute,alerts=10/minute,"
                 "ingest=1200/minute,default=120/minute,auth_failures=20/minute")


def parse_tokens(raw: str) -> tuple[ApiToken, ...]:
    tokens = []
    for part in filter(None, (p.strip() for p in raw.split(","))):
        pieces = part.split(":")
        if len(pieces) not in (2, 3) or not pieces[0]:
            raise ValueError("expected token:role[:subject], comma separated")
        token, role = pieces[0], pieces[1]
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        if len(token) < 16:
            raise ValueError("each token must be at least 16 characters")
        subject = pieces[2] if len(pieces) == 3 and pieces[2] else token_subject(token)
        tokens.append(ApiToken(token, role, subject))
    return tuple(tokens)


def token_subject(token: str) -> str:
    """The subject of a token configured without one: derived by hash, never a part of it."""
    return "token-" + hashlib.sha256(token.encode()).hexdigest()[:12]


def secret_of(min_bytes: int) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if len(raw.encode()) < min_bytes:
            raise ValueError(f"must be at least {min_bytes} bytes, got {len(raw.encode())}")
        return raw
    return parse


def readable_file(raw: str) -> Path:
    path = Path(raw)
    if not path.is_file():
        raise ValueError(f"no such file: {raw!r}")
    return path


def parse_networks(raw: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    nets = []
    for part in filter(None, (p.strip() for p in raw.split(","))):
        try:
            nets.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"expected CIDRs like 10.0.0.0/8, got {part!r}") from None
    return tuple(nets)


def parse_pem(raw: str) -> str:
    """Accept a PEM string, or a path to a PEM file."""
    text = raw if "-----BEGIN" in raw else _read(raw)
    if "-----BEGIN" not in text:
        raise ValueError("expected a PEM public key or a path to one")
    return text


def parse_fernet_keys(raw: str) -> tuple[str, ...]:
    """Comma-separated Fernet keys (32 url-safe base64-encoded bytes each), newest first."""
    keys = tuple(k.strip() for k in raw.split(",") if k.strip())
    if not keys:
        raise ValueError("expected one or more Fernet keys, comma separated, newest first")
    for position, key in enumerate(keys, 1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise ValueError(f"key {position} is not a Fernet key (32 url-safe base64-encoded "
                             "bytes; make one with `python -c \"from cryptography.fernet "
                             "import Fernet; print(Fernet.generate_key().decode())\"`)") from None
    return keys


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise ValueError(f"cannot read {path!r}: {exc.strerror}") from None


class EnvSettings:
    """Mixin: ``from_env()`` for a frozen dataclass whose fields use :func:`setting`."""

    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field]]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        environ = os.environ if environ is None else environ
        file_values = _config_file(environ)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            env = f.metadata.get("env")
            if f.name in overrides or env is None:
                continue
            raw = environ.get(env)
            if raw is None:
                raw = file_values.get(env, file_values.get(env.removeprefix("BOTMON_").lower()))
            if raw is None or raw == "":
                continue
            try:
                values[f.name] = f.metadata["parse"](str(raw))
            except ValueError as exc:
                raise ConfigError(f"{env}: {exc}") from None
        values.update(overrides)
        return cls(**values)._derived()

    def _derived(self) -> Self:
        """Fill defaults that depend on other settings; subclasses extend it."""
        return self

    def redacted(self) -> dict[str, Any]:
        """Every setting by variable name, with secrets replaced by ``***``."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            env = f.metadata.get("env", f.name)
            value = getattr(self, f.name)
            if f.metadata.get("secret") and value:
                value = "***"
            elif isinstance(value, str) and "://" in value:
                value = redact_url(value, every_parameter=True)
            elif isinstance(value, dict):
                value = {k: str(v) for k, v in value.items()}
            elif isinstance(value, tuple):
                value = [str(v) for v in value]
            elif value is not None and not isinstance(value, int | float | bool | str):
                value = str(value)
            out[env] = value
        return out

    @classmethod
    def documentation(cls) -> list[tuple[str, str, str]]:
        """(variable, default, meaning) of every setting, for the README."""
        rows = []
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if "env" in f.metadata:
                rows.append((f.metadata["env"], "" if f.default is None else str(f.default),
                             f.metadata["doc"]))
        return rows


def _config_file(environ: Mapping[str, str]) -> dict[str, Any]:
    path = environ.get("BOTMON_CONFIG")
    if not path:
        return {}
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"BOTMON_CONFIG: cannot read {path!r}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"BOTMON_CONFIG: {path!r} is not valid TOML: {exc}") from None
    return {str(k): v for k, v in data.items()}


@dataclass(frozen=True)
class Settings(EnvSettings):
    """The suite's settings (CONTRACT.md §2); every component reads the same ones."""

    http_addr: str = setting("BOTMON_HTTP_ADDR", "127.0.0.1:8080", address,
                             doc="gateway listen address")
    gateway_workers: int = setting("BOTMON_GATEWAY_WORKERS", 1, positive_int,
                                   doc="gateway worker processes sharing the HTTP address")
    health_addr: str = setting("BOTMON_HEALTH_ADDR", "127.0.0.1:50051", address,
                               doc="gRPC listen address of the health service")
    metrics_addr: str = setting("BOTMON_METRICS_ADDR", "127.0.0.1:50052", address,
                                doc="gRPC listen address of the metrics service")
    alerts_addr: str = setting("BOTMON_ALERTS_ADDR", "127.0.0.1:50053", address,
                               doc="gRPC listen address of the alerts service")
    logs_addr: str = setting("BOTMON_LOGS_ADDR", "127.0.0.1:50054", address,
                             doc="gRPC listen address of the logs service")
    export_addr: str = setting("BOTMON_EXPORT_ADDR", "127.0.0.1:50055", address,
                               doc="gRPC listen address of the export service")
    health_target: str | None = setting("BOTMON_HEALTH_TARGET",
                                        doc="gRPC target clients dial for health (default: the ADDR)")
    metrics_target: str | None = setting("BOTMON_METRICS_TARGET",
                                         doc="gRPC target for metrics, e.g. dns:///metrics:50052")
    alerts_target: str | None = setting("BOTMON_ALERTS_TARGET", doc="gRPC target for alerts")
    logs_target: str | None = setting("BOTMON_LOGS_TARGET", doc="gRPC target for logs")
    export_target: str | None = setting("BOTMON_EXPORT_TARGET", doc="gRPC target for export")
    data_dir: Path = setting("BOTMON_DATA_DIR", Path("./data"), Path,
                             doc="where embedded state lives")
    store_url: str | None = setting("BOTMON_STORE_URL", None, url("sqlite", "postgresql", "postgres"),
                                    secret=True,
                                    doc="the suite's store; default sqlite:///<data dir>/botmon.db")
    redis_url: str | None = setting("BOTMON_REDIS_URL", None, url("redis", "rediss", "unix"),
                                    secret=True, doc="Redis for rate limits and fan-out")
    api_tokens: tuple[ApiToken, ...] = setting("BOTMON_API_TOKENS", (), parse_tokens, secret=True,
                                               doc="token:role[:subject], comma separated")
    jwt_secret: str | None = setting("BOTMON_JWT_SECRET", None, secret_of(32), secret=True,
                                     doc="accept HS256 JWTs signed with this secret "
                                         "(at least 32 bytes)")
    secret_key: tuple[str, ...] | None = setting(
        "BOTMON_SECRET_KEY", None, parse_fernet_keys, secret=True,
        doc="Fernet keys, comma separated, newest first, that encrypt alert rule secrets, "
            "Slack/Teams URLs and PagerDuty keys at rest (default: a key created in the data dir)")
    jwt_public_key: str | None = setting("BOTMON_JWT_PUBLIC_KEY", None, parse_pem,
                                         doc="accept RS256 JWTs (PEM or path)")
    jwt_issuer: str | None = setting("BOTMON_JWT_ISSUER",
                                     doc="when set, a JWT's 'iss' claim must equal it")
    jwt_audience: str | None = setting("BOTMON_JWT_AUDIENCE",
                                       doc="when set, a JWT's 'aud' claim must include it")
    jwt_max_lifetime: float = setting("BOTMON_JWT_MAX_LIFETIME", 86400.0, positive_float,
                                      doc="seconds a JWT may be valid for (exp after iat, or "
                                          "after now)")
    internal_token: str | None = setting(
        "BOTMON_INTERNAL_TOKEN", None, secret_of(16), secret=True,
        doc="credential of the suite's own calls between components; the same on every "
            "replica (default: one kept in the data dir; `botmon up` passes it to its children)")
    tls_cert: Path | None = setting("BOTMON_TLS_CERT", None, readable_file,
                                    doc="PEM certificate chain: HTTPS on the gateway, TLS on "
                                        "every gRPC port (reloaded on change or SIGHUP)")
    tls_key: Path | None = setting("BOTMON_TLS_KEY", None, readable_file,
                                   doc="PEM private key of BOTMON_TLS_CERT")
    tls_ca: Path | None = setting("BOTMON_TLS_CA", None, readable_file,
                                  doc="PEM CA bundle the suite's clients verify servers (and, "
                                      "under require, servers verify clients) against")
    tls_client_auth: str = setting("BOTMON_TLS_CLIENT_AUTH", "none", one_of("none", "require"),
                                   doc="require: gRPC ports demand a client certificate "
                                       "(mutual TLS; clients present BOTMON_TLS_CERT)")
    rate_limits: dict[str, Rate] = setting("BOTMON_RATE_LIMITS", None, parse_rates,
                                           doc="per-class limits, merged over " + DEFAULT_RATES)
    rate_limit_fail: str = setting("BOTMON_RATE_LIMIT_FAIL", "open", one_of("open", "closed"),
                                   doc="when Redis is down: open (serve) or closed (429)")
    ws_max_per_subject: int = setting(
        "BOTMON_WS_MAX_PER_SUBJECT", 20, positive_int,
        doc="open WebSockets one token subject may hold per gateway process; one more is 429")
    ws_max_per_ip: int = setting(
        "BOTMON_WS_MAX_PER_IP", 100, positive_int,
        doc="open WebSockets one client IP (several users behind one proxy, say) may hold per "
            "gateway process; one more is 429")
    trusted_proxies: tuple = setting("BOTMON_TRUSTED_PROXIES", (), parse_networks,
                                     doc="CIDRs whose X-Forwarded-For is believed")
    probe_database_url: str | None = setting("BOTMON_PROBE_DATABASE_URL", None,
                                             url("sqlite", "postgresql", "postgres"), secret=True,
                                             doc="database probed by health (default: the store)")
    probe_cache_url: str | None = setting("BOTMON_PROBE_CACHE_URL", None,
                                          url("redis", "rediss", "unix"), secret=True,
                                          doc="Redis probed by health (default: BOTMON_REDIS_URL)")
    probe_storage_path: Path | None = setting("BOTMON_PROBE_STORAGE_PATH", None, Path,
                                              doc="filesystem reported as storage (default: data dir)")
    probe_llm_url: str | None = setting("BOTMON_PROBE_LLM_URL", None, url("http", "https"),
                                        doc="OpenAI-compatible LLM server probed with GET /v1/models")
    probe_timeout: float = setting("BOTMON_PROBE_TIMEOUT", 2.0, positive_float,
                                   doc="seconds each health probe may take")
    probe_interval: float = setting("BOTMON_PROBE_INTERVAL", 5.0, positive_float,
                                    doc="seconds between background probe rounds")
    slow_query_ms: float = setting("BOTMON_SLOW_QUERY_MS", 1000.0, positive_float,
                                   doc="a query running longer is slow")
    alert_eval_interval: float = setting("BOTMON_ALERT_EVAL_INTERVAL", 15.0, positive_float,
                                         doc="seconds between alert rule evaluations")
    session_idle_timeout: float = setting("BOTMON_SESSION_IDLE_TIMEOUT", 1800.0, positive_float,
                                          doc="seconds without an event before a session ends")
    smtp_host: str | None = setting("BOTMON_SMTP_HOST", doc="SMTP server for e-mail notifications")
    smtp_port: int = setting("BOTMON_SMTP_PORT", 25, positive_int, doc="SMTP port")
    smtp_user: str | None = setting("BOTMON_SMTP_USER", doc="SMTP user")
    smtp_password: str | None = setting("BOTMON_SMTP_PASSWORD", secret=True, doc="SMTP password")
    smtp_from: str = setting("BOTMON_SMTP_FROM", "botmon@localhost", doc="sender address")
    smtp_starttls: bool = setting("BOTMON_SMTP_STARTTLS", False, parse_bool,
                                  doc="upgrade SMTP with STARTTLS")
    smtp_allow_plaintext_auth: bool = setting(
        "BOTMON_SMTP_ALLOW_PLAINTEXT_AUTH", False, parse_bool,
        doc="log in to SMTP even when the connection is not encrypted (the password then "
            "crosses the network in clear)")
    pagerduty_url: str = setting("BOTMON_PAGERDUTY_URL", "https://events.pagerduty.com/v2/enqueue",
                                 url("http", "https"), doc="PagerDuty Events v2 endpoint")
    sms_gateway_url: str | None = setting("BOTMON_SMS_GATEWAY_URL", None, url("http", "https"),
                                          doc="JSON POST endpoint for SMS notifications")
    grpc_deadline: float = setting("BOTMON_GRPC_DEADLINE", 5.0, positive_float,
                                   doc="seconds every gRPC call between components may take")
    grpc_max_connection_age: float = setting(
        "BOTMON_GRPC_MAX_CONNECTION_AGE", 300.0, positive_float,
        doc="seconds before a gRPC server asks a client to reconnect (GOAWAY), so clients "
            "re-resolve dns:/// targets and reach new replicas; open streams finish first")
    heartbeat_interval: float = setting("BOTMON_HEARTBEAT_INTERVAL", 5.0, positive_float,
                                        doc="seconds between a service's heartbeats to health")
    instance_id: str | None = setting(
        "BOTMON_INSTANCE_ID", None, instance_name,
        doc="identifies this process among the replicas of its component in /status "
            "(default: host-pid-random; botmon up sets one per child)")
    supervisor_pid: int | None = setting(
        "BOTMON_SUPERVISOR_PID", None, positive_int,
        doc="set by botmon up for its children: a child exits when that process is gone")
    environment: str = setting("BOTMON_ENVIRONMENT", "production",
                               doc="name shown by /debug/info")
    log_level: str = setting("BOTMON_LOG_LEVEL", "info",
                             one_of("debug", "info", "warning", "error"), doc="log level")

    def _derived(self) -> Settings:
        fills: dict[str, Any] = {}
        for svc in ("health", "metrics", "alerts", "logs", "export"):
            if getattr(self, f"{svc}_target") is None:
                fills[f"{svc}_target"] = getattr(self, f"{svc}_addr")
        if self.store_url is None:
            fills["store_url"] = f"sqlite:///{self.data_dir.resolve() / 'botmon.db'}"
        if self.probe_database_url is None:
            fills["probe_database_url"] = fills.get("store_url", self.store_url)
        if self.probe_cache_url is None and self.redis_url:
            fills["probe_cache_url"] = self.redis_url
        if self.probe_storage_path is None:
            fills["probe_storage_path"] = self.data_dir
        if self.instance_id is None:
            fills["instance_id"] = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        fills["rate_limits"] = {**parse_rates(DEFAULT_RATES), **(self.rate_limits or {})}
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("BOTMON_TLS_CERT: BOTMON_TLS_CERT and BOTMON_TLS_KEY go together")
        if self.tls_client_auth == "require" and self.tls_cert is None:
            raise ConfigError("BOTMON_TLS_CLIENT_AUTH: require needs BOTMON_TLS_CERT and "
                              "BOTMON_TLS_KEY")
        return dataclasses.replace(self, **fills)

    def target(self, service: str) -> str:
        """The gRPC target clients dial for ``service``."""
        return getattr(self, f"{service}_target")

    def addr(self, service: str) -> str:
        """The listen address of ``service`` ("gateway" gives the HTTP address)."""
        return self.http_addr if service == "gateway" else getattr(self, f"{service}_addr")
