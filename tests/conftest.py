"""Fixtures shared by every test: real Redis and PostgreSQL, and suite settings.

``BOTMON_TEST_REDIS_URL`` / ``BOTMON_TEST_DATABASE_URL`` point at running
servers; when unset, a throwaway ``redis-server`` / PostgreSQL cluster is
started on a free port for the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import grpc
import pytest
import redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.protobuf import timestamp_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from botmon.runtime.channels import open_channel
from botmon.runtime.config import ApiToken, Settings
from botmon.runtime.credentials import bootstrap_admin_token, internal_token


def free_port() -> int:
    """A port free now, chosen below the kernel's ephemeral range (32768 and up) so that
    no outgoing connection's automatic port can take it before the test binds it.

    A port is handed out once per test session: a free port is only reserved by the
    caller binding it later, so two callers (two components of one suite, or a test and
    a process an earlier test left stopping) must never be given the same one."""
    for _ in range(200):
        port = _ports.randrange(20000, 32768)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        if len(_handed_out) > _REUSE_AFTER:
            _handed_out.clear()
        return port
    raise RuntimeError("no free port between 20000 and 32767")


_ports = random.Random()
_handed_out: set[int] = set()
#: After this many ports the oldest hand-outs are long closed: start afresh.
_REUSE_AFTER = 8000


def timestamp_message(stamp: str | float | int) -> timestamp_pb2.Timestamp:
    """A JSON body's timestamp (RFC 3339 text, or Unix seconds as a number or text) as the
    ``Timestamp`` a gRPC client sets for the same time."""
    message = timestamp_pb2.Timestamp()
    if isinstance(stamp, str) and "T" in stamp:
        message.FromJsonString(stamp)
    else:
        seconds = math.floor(float(stamp))
        message.seconds, message.nanos = seconds, round((float(stamp) - seconds) * 1e9)
    return message


def grpc_serving(address: str, timeout: float = 2.0) -> bool:
    """Whether the gRPC server at ``address`` answers ``grpc.health.v1`` Check with SERVING."""
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                              timeout=timeout)
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def suite_channel(target: str, settings: Settings) -> grpc.aio.Channel:
    """A channel to one of the suite's gRPC ports, as the suite's own processes open it."""
    return open_channel(target, settings, token=internal_token(settings))


class _SyncBearer(grpc.UnaryUnaryClientInterceptor):
    def __init__(self, token: str):
        self.pair = ("authorization", f"Bearer {token}")

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(details._replace(metadata=(*(details.metadata or ()), self.pair)),
                            request)


def sync_suite_channel(target: str, settings: Settings) -> grpc.Channel:
    """A blocking channel carrying the internal credential (unary calls)."""
    return grpc.intercept_channel(grpc.insecure_channel(target),
                                  _SyncBearer(internal_token(settings)))


def api_token(settings: Settings) -> str:
    """A token the settings accept from applications: the first configured, or the
    bootstrap admin token of the data dir (as ``make run`` prints it)."""
    return bootstrap_admin_token(settings)[0].token


def _wait(predicate, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start within {timeout}s")


@pytest.fixture(scope="session")
def redis_server_url():
    """URL of a Redis server for the session (database number chosen per test)."""
    url = os.environ.get("BOTMON_TEST_REDIS_URL")
    if url:
        yield url.rstrip("/")
        return
    exe = shutil.which("redis-server")
    if not exe:
        pytest.skip("redis-server is not installed and BOTMON_TEST_REDIS_URL is unset")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="botmon-redis-")
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", workdir],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}"
    _wait(lambda: redis.Redis.from_url(url).ping(), "redis-server")
    yield url
    proc.terminate()
    proc.wait(10)
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def redis_url(redis_server_url):
    """A Redis URL on a database emptied for this test."""
    base = redis_server_url
    # A URL that already names a database keeps it; otherwise tests use db 9.
    url = base if base.rsplit("/", 1)[-1].isdigit() and base.count("/") > 2 else f"{base}/9"
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


def _start_postgres():
    initdb = shutil.which("initdb") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))), None)
    if not initdb:
        pytest.skip("PostgreSQL is not installed and BOTMON_TEST_DATABASE_URL is unset")
    bindir = Path(initdb).resolve().parent
    workdir = Path(tempfile.mkdtemp(prefix="botmon-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(workdir, "postgres", "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    data = workdir / "data"
    subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                    "--auth=trust", "-E", "UTF8"], check=True, capture_output=True)
    port = free_port()
    subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(workdir / "log"),
                    "-o", f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off",
                    "-w", "start"], check=True, capture_output=True)
    stop = [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]
    return f"postgresql://postgres@127.0.0.1:{port}/postgres", stop, workdir


@pytest.fixture(scope="session")
def postgres_server_url():
    """URL of a PostgreSQL server (its maintenance database) for the session."""
    url = os.environ.get("BOTMON_TEST_DATABASE_URL")
    if url:
        yield url
        return
    url, stop, workdir = _start_postgres()
    yield url
    subprocess.run(stop, capture_output=True)
    shutil.rmtree(workdir, ignore_errors=True)


async def _execute(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute(sql, timeout=10)
    finally:
        await conn.close(timeout=10)


@contextlib.contextmanager
def scratch_database(server_url: str, prefix: str = "botmon_test"):
    """The URL of a new, empty database on ``server_url``'s server; dropped on exit."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    asyncio.run(_execute(server_url, f'CREATE DATABASE "{name}"'))
    try:
        yield f"{server_url.rpartition('/')[0]}/{name}"
    finally:
        asyncio.run(_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def postgres_url(postgres_server_url):
    """URL of a new, empty PostgreSQL database, dropped after the test."""
    with scratch_database(postgres_server_url) as url:
        yield url


@pytest.fixture(scope="session")
def rsa_keys():
    """An RSA key pair for RS256 JWTs: (private PEM bytes, public PEM text)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public.decode()


@pytest.fixture
def make_settings(tmp_path):
    """Build suite settings for a test: embedded defaults under ``tmp_path`` plus overrides.

    Credentials are configured, as deployments do, unless the test configures its own:
    a bootstrapped token would add its audit entry to every test's logs. Pass
    ``api_tokens=()`` to test the bootstrap.
    """

    # One pair per test: every settings a test builds (replicas, restarts) share them.
    internal = f"test-internal-{uuid.uuid4().hex}"
    admin = ApiToken(f"test-admin-{uuid.uuid4().hex}", "admin", "test-admin")

    def make(environ: dict[str, str] | None = None, **overrides) -> Settings:
        environ = environ or {}
        overrides.setdefault("data_dir", tmp_path)
        if "BOTMON_INTERNAL_TOKEN" not in environ:
            overrides.setdefault("internal_token", internal)
        if not ({"BOTMON_API_TOKENS", "BOTMON_JWT_SECRET", "BOTMON_JWT_PUBLIC_KEY"} & set(environ)
                or {"api_tokens", "jwt_secret", "jwt_public_key"} & set(overrides)):
            overrides["api_tokens"] = (admin,)
        return Settings.from_env(environ, **overrides)

    return make
