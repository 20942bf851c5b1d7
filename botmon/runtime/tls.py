"""TLS for every port of the suite, with certificates re-read when their files change.

``BOTMON_TLS_CERT``/``BOTMON_TLS_KEY`` turn on TLS on the gRPC ports and HTTPS on the
gateway; clients verify servers against ``BOTMON_TLS_CA`` and, when they hold a
certificate, present it (``BOTMON_TLS_CLIENT_AUTH=require`` makes the gRPC ports
demand one). A rotated certificate is used for new handshakes as soon as its files
change (or on SIGHUP); established connections carry on undisturbed.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from pathlib import Path

import grpc

from botmon.runtime.config import Settings

__all__ = [
    "CertificateFiles",
    "channel_credentials",
    "client_ssl_context",
    "reload_ssl_context",
    "server_credentials",
    "server_ssl_context",
    "uses_tls",
]

log = logging.getLogger("botmon.tls")


def uses_tls(settings: Settings) -> bool:
    """True when the suite's ports speak TLS, so its clients must too."""
    return settings.tls_cert is not None or settings.tls_ca is not None


def _signature(paths: list[Path]) -> tuple:
    out = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            return ()
        out.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(out)


class CertificateFiles:
    """A certificate chain, its key and the CA bundle, re-read when their files change."""

    def __init__(self, cert: Path, key: Path, ca: Path | None = None):
        self.paths = [p for p in (cert, key, ca) if p is not None]
        self.cert_path, self.key_path, self.ca_path = cert, key, ca
        self._lock = threading.Lock()
        self._seen: tuple = ()
        self.cert = self.key = b""
        self.ca: bytes | None = None
        self.generation = 0
        self.refresh()

    def refresh(self, force: bool = False) -> bool:
        """Re-read the files if they changed (or ``force``); True when new PEMs were loaded."""
        with self._lock:
            seen = _signature(self.paths)
            if not seen or (seen == self._seen and not force):
                return False
            try:
                cert, key = self.cert_path.read_bytes(), self.key_path.read_bytes()
                ca = self.ca_path.read_bytes() if self.ca_path else None
            except OSError as exc:
                log.warning("cannot read the TLS files (%s); keeping the current ones", exc)
                return False
            if b"-----BEGIN" not in cert or b"-----BEGIN" not in key:
                # A half-written rotation: wait for the next change.
                return False
            self._seen = seen
            changed = (cert, key, ca) != (self.cert, self.key, self.ca)
            self.cert, self.key, self.ca = cert, key, ca
            if changed:
                self.generation += 1
                if self.generation > 1:
                    log.info("TLS certificate reloaded", extra={"cert": str(self.cert_path)})
            return changed


def server_credentials(settings: Settings, files: CertificateFiles) -> grpc.ServerCredentials:
    """Credentials of a gRPC port that re-read ``files`` for each new handshake."""
    require = settings.tls_client_auth == "require"

    def configuration() -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration([(files.key, files.cert)],
                                                          root_certificates=files.ca)

    served = [files.generation]

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        # Called by gRPC before each handshake; None keeps the current configuration.
        # Compared by generation, not by what this refresh found: a SIGHUP's forced
        # refresh has already loaded the new files, and gRPC must still be given them.
        files.refresh()
        if files.generation == served[0]:
            return None
        served[0] = files.generation
        return configuration()

    return grpc.dynamic_ssl_server_credentials(configuration(), fetch,
                                               require_client_authentication=require)


def channel_credentials(settings: Settings) -> grpc.ChannelCredentials:
    """Client credentials: verify against ``BOTMON_TLS_CA``; present our certificate if any."""
    ca = Path(settings.tls_ca).read_bytes() if settings.tls_ca else None
    if settings.tls_cert is None or settings.tls_key is None:
        return grpc.ssl_channel_credentials(root_certificates=ca)
    return grpc.ssl_channel_credentials(root_certificates=ca,
                                        private_key=Path(settings.tls_key).read_bytes(),
                                        certificate_chain=Path(settings.tls_cert).read_bytes())


def client_ssl_context(settings: Settings) -> ssl.SSLContext:
    """An HTTPS client context verifying against ``BOTMON_TLS_CA`` (else the system's CAs)."""
    return ssl.create_default_context(cafile=str(settings.tls_ca) if settings.tls_ca else None)


def server_ssl_context(files: CertificateFiles) -> ssl.SSLContext:
    """An HTTPS server context; :func:`reload_ssl_context` swaps its certificate in place."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(files.cert_path, files.key_path)
    return context


def reload_ssl_context(context: ssl.SSLContext, files: CertificateFiles,
                       force: bool = False) -> bool:
    """Load changed certificate files into ``context``; new handshakes use them."""
    if not files.refresh(force):
        return False
    try:
        context.load_cert_chain(files.cert_path, files.key_path)
    except (OSError, ssl.SSLError) as exc:
        log.warning("cannot load the rotated TLS certificate (%s); keeping the current one", exc)
        return False
    return True
