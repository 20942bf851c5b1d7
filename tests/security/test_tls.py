"""TLS on every port, mutual TLS on the gRPC ports, and certificate rotation (issue 10 item 3).

Certificates come from the session's test CA (``pki``, made with ``cryptography``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import grpc
import httpx
import pytest
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc

from botmon.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from tests.conftest import free_port
from tests.harness import Suite
from tests.security.conftest import make_ca
from tests.waiting import eventually, wait_until

ROOT = Path(__file__).resolve().parents[2]


def _settings(make_settings, pki, tls_files, client_auth: str = "none"):
    cert, key = tls_files
    return make_settings(tls_cert=cert, tls_key=key, tls_ca=pki.ca, tls_client_auth=client_auth)


def _verify(pki) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki.ca))


def _token(suite: Suite, role: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {suite.tokens[role]}"),)


async def _list_logs(channel: grpc.aio.Channel, suite: Suite) -> grpc.StatusCode:
    try:
        await logs_service_pb2_grpc.LogsServiceStub(channel).ListLogs(
            logs_service_pb2.ListLogsRequest(), timeout=5, metadata=_token(suite, "viewer"))
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def _presented_serial(port: int, ca: Path) -> int:
    """The serial number of the certificate the server on ``port`` presents now."""
    context = ssl.create_default_context(cafile=str(ca))
    context.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number


@pytest.mark.parametrize("client_auth", ["none", "require"])
async def test_the_whole_suite_works_end_to_end_under_tls(make_settings, pki, tls_files,
                                                         client_auth):
    settings = _settings(make_settings, pki, tls_files, client_auth)
    async with Suite(settings) as suite:
        assert suite.base.startswith("https://")
        async with httpx.AsyncClient(verify=_verify(pki), timeout=10) as http:
            r = await http.post(f"{suite.base}/logs", headers=suite.headers("operator"),
                                json={"logs": [{"level": "info", "service": "tls-e2e",
                                                "message": "over TLS"}]})
            assert r.status_code == 202, r.text

            async def written() -> bool:
                r = await http.get(f"{suite.base}/logs", params={"service": "tls-e2e"},
                                   headers=suite.headers("viewer"))
                return r.status_code == 200 and len(r.json()["logs"]) == 1

            await eventually(written, within=15)

            # Heartbeats reach health over TLS with the internal credential.
            async def listed() -> bool:
                r = await http.get(f"{suite.base}/status", headers=suite.headers("viewer"))
                return {s["name"] for s in r.json()["services"]} >= {"metrics", "alerts",
                                                                       "logs", "gateway"}

            await eventually(listed, within=20)
        async with httpx.AsyncClient(timeout=5) as plain:
            with pytest.raises(httpx.TransportError):
                await plain.get(f"http://127.0.0.1:{suite.port}/api/v1/monitoring/health/live")


async def test_grpc_ports_refuse_plaintext_and_demand_client_certificates(make_settings, pki,
                                                                          tls_files):
    settings = _settings(make_settings, pki, tls_files, "require")
    async with Suite(settings, components=("logs",), gateway=False) as suite:
        target = suite.settings.target("logs")
        async with grpc.aio.insecure_channel(target) as channel:
            assert await _list_logs(channel, suite) == grpc.StatusCode.UNAVAILABLE
        ca = pki.ca.read_bytes()
        anonymous = grpc.ssl_channel_credentials(root_certificates=ca)
        async with grpc.aio.secure_channel(target, anonymous) as channel:
            assert await _list_logs(channel, suite) == grpc.StatusCode.UNAVAILABLE
        cert, key = pki.issue("client-app", client=True)
        known = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key.read_bytes(),
                                             certificate_chain=cert.read_bytes())
        async with grpc.aio.secure_channel(target, known) as channel:
            assert await _list_logs(channel, suite) == grpc.StatusCode.OK
        stranger = pki.issue("stranger", client=True, ca=make_ca("another CA"))
        foreign = grpc.ssl_channel_credentials(root_certificates=ca,
                                               private_key=stranger[1].read_bytes(),
                                               certificate_chain=stranger[0].read_bytes())
        async with grpc.aio.secure_channel(target, foreign) as channel:
            assert await _list_logs(channel, suite) == grpc.StatusCode.UNAVAILABLE


async def test_rotated_certificates_are_picked_up_without_dropping_connections(
        make_settings, pki, tls_files):
    cert_path, key_path = tls_files
    async with Suite(_settings(make_settings, pki, tls_files), components=("logs",)) as suite:
        grpc_port = int(suite.settings.target("logs").rpartition(":")[2])
        before = {port: await asyncio.to_thread(_presented_serial, port, pki.ca)
                  for port in (grpc_port, suite.port)}
        credentials = grpc.ssl_channel_credentials(root_certificates=pki.ca.read_bytes())
        async with grpc.aio.secure_channel(suite.settings.target("logs"), credentials) as held:
            assert await _list_logs(held, suite) == grpc.StatusCode.OK
            # cert-manager style: new files replace the old ones by rename.
            new_cert, new_key = pki.issue("rotated")
            for new, path in ((new_key, key_path), (new_cert, cert_path)):
                staged = path.with_suffix(".new")
                staged.write_bytes(new.read_bytes())
                os.replace(staged, path)
            rotated = x509.load_pem_x509_certificate(cert_path.read_bytes()).serial_number
            assert rotated not in before.values()

            async def presented() -> bool:
                return all([await asyncio.to_thread(_presented_serial, port, pki.ca) == rotated
                            for port in before])

            await eventually(presented, within=15)
            # The connection opened before the rotation carries on.
            assert await _list_logs(held, suite) == grpc.StatusCode.OK
            assert held.get_state() == grpc.ChannelConnectivity.READY


async def _healthcheck(target: str, settings: dict[str, str]) -> subprocess.CompletedProcess:
    """`botmon healthcheck target` with only ``settings`` among the BOTMON_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOTMON_")}
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "botmon.cli", "healthcheck", target], cwd=ROOT,
        env={**env, **settings}, capture_output=True, text=True, timeout=60)


#: Size of the certificate files in the SIGHUP test: PEMs padded to it with trailing newlines,
#: so a rotated one of another length fits in the same number of bytes.
PADDED = 8192


def _padded(pem: bytes) -> bytes:
    return pem + b"\n" * (PADDED - len(pem))


def _rewrite_unnoticed(path: Path, pem: bytes) -> None:
    """New content for ``path`` with its inode, size and mtime kept: no file watch sees it."""
    before = path.stat()
    with open(path, "r+b") as fh:
        fh.write(_padded(pem))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == \
        (before.st_ino, before.st_size, before.st_mtime_ns)


@pytest.mark.parametrize("component", ["logs", "gateway"])
def test_sighup_reloads_the_certificate_of_a_running_process(pki, tls_files, tmp_path,
                                                             component):
    cert_path, key_path = tls_files
    for path in tls_files:
        path.write_bytes(_padded(path.read_bytes()))
    port = free_port()
    address = f"127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOTMON_")}
    env.update({"BOTMON_DATA_DIR": str(tmp_path / "data"), "BOTMON_TLS_CERT": str(cert_path),
                "BOTMON_TLS_KEY": str(key_path), "BOTMON_TLS_CA": str(pki.ca),
                "BOTMON_INTERNAL_TOKEN": "sighup-test-internal-token-0123456789",
                "BOTMON_HEALTH_TARGET": f"127.0.0.1:{free_port()}",
                "BOTMON_HTTP_ADDR" if component == "gateway" else "BOTMON_LOGS_ADDR": address})
    with open(tmp_path / "stderr", "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "botmon.cli", "serve", component],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        def presented() -> int:
            assert proc.poll() is None, (tmp_path / "stderr").read_text()
            return _presented_serial(port, pki.ca)

        served = wait_until(presented, f"{component} serving TLS", timeout=60)
        new_cert, new_key = pki.issue(f"sighup-{component}")
        rotated = x509.load_pem_x509_certificate(new_cert.read_bytes()).serial_number
        _rewrite_unnoticed(key_path, new_key.read_bytes())
        _rewrite_unnoticed(cert_path, new_cert.read_bytes())
        assert presented() == served
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: presented() == rotated, "the rotated certificate presented",
                   timeout=15)
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(20)


async def test_healthcheck_verifies_against_the_configured_ca(make_settings, pki, tls_files):
    async with Suite(_settings(make_settings, pki, tls_files), components=("logs",),
                     gateway=False) as suite:
        target = suite.settings.target("logs")
        ok = await _healthcheck(target, {"BOTMON_TLS_CA": str(pki.ca)})
        assert ok.returncode == 0 and "SERVING" in ok.stdout, ok.stderr
        unverified = await _healthcheck(target, {})
        assert unverified.returncode == 1
        async with grpc.aio.insecure_channel(target) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                                timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_healthcheck_passes_mutual_tls_as_the_kubernetes_exec_probe_runs_it(
        make_settings, pki, tls_files):
    """deploy/kubernetes/components/tls probes `botmon healthcheck 127.0.0.1:<port>` with the
    pod's TLS settings, since the kubelet's grpc probe cannot speak TLS."""
    cert, key = tls_files
    async with Suite(_settings(make_settings, pki, tls_files, client_auth="require"),
                     components=("logs",), gateway=False) as suite:
        target = f"127.0.0.1:{suite.settings.target('logs').rsplit(':', 1)[1]}"
        pod = {"BOTMON_TLS_CERT": str(cert), "BOTMON_TLS_KEY": str(key),
               "BOTMON_TLS_CA": str(pki.ca), "BOTMON_TLS_CLIENT_AUTH": "require"}
        ok = await _healthcheck(target, pod)
        assert ok.returncode == 0 and "SERVING" in ok.stdout, ok.stderr
        # Without the pod's certificate the server refuses the handshake.
        anonymous = await _healthcheck(target, {"BOTMON_TLS_CA": str(pki.ca)})
        assert anonymous.returncode == 1
