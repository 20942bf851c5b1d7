"""Local servers standing in for what cannot run here: SaaS receivers, an SMTP relay, metrics.

* :class:`Receiver` — a real aiohttp server recording every request (Slack, Teams,
  PagerDuty, the SMS gateway and webhook receivers); per-path answers can be
  scripted (fail n times, hang).
* :class:`Mailbox` — a real aiosmtpd SMTP server (optionally with AUTH) recording mail.
* :class:`MetricsStandIn` — a ``MetricsService`` on a real in-process gRPC server
  whose ``GetMetricValues`` answers the values a test sets (deterministic figures).
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import ssl
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import grpc
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from botmon.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from tests.conftest import free_port


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    time: float
    status: int

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """An HTTP server that records every request and answers as scripted per path."""

    requests: list[Request] = field(default_factory=list)
    # path -> statuses to answer next (then 200/202); "hang" sleeps until the client gives up.
    script: dict[str, list[int | str]] = field(default_factory=dict)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    def fail(self, path: str, *answers: int | str) -> None:
        self.script.setdefault(path, []).extend(answers)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        answers = self.script.get(request.path) or []
        answer = answers.pop(0) if answers else None
        status = 202 if request.path.startswith(("/pagerduty", "/teams")) else 200
        if isinstance(answer, int):
            status = answer
        self.requests.append(Request(request.path, dict(request.headers), body, time.time(),
                                     -1 if answer == "hang" else status))
        if answer == "hang":
            await asyncio.sleep(3600)
        if request.path.startswith("/pagerduty") and status == 202:
            data = json.loads(body)
            return web.json_response({"status": "success", "message": "Event processed",
                                      "dedup_key": data.get("dedup_key")}, status=202)
        return web.Response(status=status, text="ok" if status < 300 else "receiver error")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        self.port = self.port or free_port()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()

    async def stop(self) -> None:
        await self._runner.cleanup()


class _Recorder:
    def __init__(self):
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 Message accepted for delivery"


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files (the certificate is its own CA)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "smtp.crt", directory / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class Mailbox:
    """A real SMTP server on a free port; with ``login`` it requires AUTH with those credentials.

    With ``tls`` (certificate, key) it requires STARTTLS before anything else.
    """

    def __init__(self, login: tuple[str, str] | None = None,
                 tls: tuple[Path, Path] | None = None):
        self.port = free_port()
        self.recorder = _Recorder()
        self.logins: list[str] = []
        kwargs: dict[str, Any] = {}
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*tls)
            kwargs.update(tls_context=context, require_starttls=True)
        if login is not None:
            def authenticate(server, session, envelope, mechanism, auth_data):
                ok = isinstance(auth_data, LoginPassword) and \
                    (auth_data.login.decode(), auth_data.password.decode()) == login
                if ok:
                    self.logins.append(auth_data.login.decode())
                return AuthResult(success=ok)
            kwargs.update(authenticator=authenticate, auth_required=True,
                          auth_require_tls=tls is not None)
        self.controller = Controller(self.recorder, hostname="127.0.0.1", port=self.port,
                                     **kwargs)

    @property
    def messages(self) -> list[tuple[list[str], Message]]:
        return self.recorder.messages

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


class MetricsStandIn(metrics_service_pb2_grpc.MetricsServiceServicer):
    """``GetMetricValues`` answering ``values``; ``down`` makes it answer UNAVAILABLE."""

    def __init__(self, values: dict[str, float] | None = None):
        self.values: dict[str, float] = dict(values or {})
        self.down = False
        self.calls = 0
        self.port = free_port()
        self.server: grpc.aio.Server | None = None

    async def GetMetricValues(self, request, context):
        self.calls += 1
        if self.down:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "metrics stand-in is down")
        return metrics_service_pb2.GetMetricValuesResponse(values=self.values)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.server = grpc.aio.server()
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(self, self.server)
        self.server.add_insecure_port(self.target)
        await self.server.start()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(0)
            self.server = None
