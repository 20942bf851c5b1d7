"""Fixtures of the security tests: an HTTP client, loopback SMTP and HTTP receivers, and a
test PKI made with ``cryptography``."""

from __future__ import annotations

import contextlib
import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from services.alerts.config import AlertsSettings
from tests.alerts.conftest import fast, mailbox, receiver  # noqa: F401 (fixtures shared)
from tests.alerts.stand_ins import MetricsStandIn
from tests.conftest import free_port
from tests.harness import Suite


@pytest.fixture
async def http():
    """An HTTP client with a bounded wait on every request."""
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


@pytest.fixture
def alerts_suite(make_settings):
    """Start a gateway and the alerts service over a metrics stand-in; ``suite.metrics`` sets
    its values. Keyword arguments override suite settings; ``alerts`` the service's own."""

    @contextlib.asynccontextmanager
    async def start(alerts: AlertsSettings | None = None, **overrides):
        metrics = MetricsStandIn({"memory.usage_percent": 40.0, "cpu.usage_percent": 10.0})
        settings = make_settings(**{"alert_eval_interval": 0.2, "grpc_deadline": 2.0,
                                    "heartbeat_interval": 60.0,
                                    "health_target": f"127.0.0.1:{free_port()}", **overrides})
        async with Suite(settings, components=("alerts",), servicers={"metrics": metrics},
                         options={"alerts": {"alerts_settings": alerts or fast()}}) as suite:
            suite.metrics = metrics
            yield suite

    return start


@dataclass(frozen=True)
class Pki:
    """A test CA and what it signed, as PEM files in one directory."""

    dir: Path
    ca: Path
    ca_key: rsa.RSAPrivateKey
    ca_cert: x509.Certificate

    def issue(self, name: str, *, client: bool = False, serial: int | None = None,
              ca: tuple[rsa.RSAPrivateKey, x509.Certificate] | None = None) -> tuple[Path, Path]:
        """Write ``<name>.pem`` and ``<name>.key``: a certificate for 127.0.0.1/localhost."""
        signer_key, signer = ca or (self.ca_key, self.ca_cert)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = datetime.now(UTC)
        # The suite's own certificate also serves as its client certificate under mTLS.
        usage = [ExtendedKeyUsageOID.CLIENT_AUTH] if client else \
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(signer.subject)
                .public_key(key.public_key())
                .serial_number(serial or x509.random_serial_number())
                .not_valid_before(now - timedelta(minutes=5))
                .not_valid_after(now + timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
                .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
                .sign(signer_key, hashes.SHA256()))
        cert_path, key_path = self.dir / f"{name}.pem", self.dir / f"{name}.key"
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cert_path, key_path


def make_ca(name: str) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> Pki:
    """A CA made for the session with ``cryptography``; ``pki.issue()`` signs certificates."""
    directory = tmp_path_factory.mktemp("pki")
    key, cert = make_ca("botmon test CA")
    ca = directory / "ca.pem"
    ca.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Pki(directory, ca, key, cert)


@pytest.fixture
def tls_files(pki, tmp_path):
    """Server certificate files of a test's own (copied, so rotating them is private)."""
    cert, key = pki.issue(f"server-{tmp_path.name}")
    own_cert, own_key = tmp_path / "tls.pem", tmp_path / "tls.key"
    own_cert.write_bytes(cert.read_bytes())
    own_key.write_bytes(key.read_bytes())
    return own_cert, own_key
