"""``botmon serve <component>`` alone, and ``botmon healthcheck`` against it."""

from __future__ import annotations

import signal

import grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from tests.conftest import free_port


def _services(address: str) -> list[str]:
    with grpc.insecure_channel(address) as channel:
        return list(ProtoReflectionDescriptorDatabase(channel).get_services())


def test_serve_logs_alone_lists_its_services_by_reflection(botmon, suite_env):
    address = suite_env["BOTMON_LOGS_ADDR"]
    run = botmon("serve", "logs", env=suite_env)
    services = run.wait_for(lambda: _services(address), "reflection on the logs port", 60)
    assert "botmon.logs.v1.LogsService" in services
    assert "grpc.health.v1.Health" in services

    check = botmon("healthcheck", address, env=suite_env)
    assert check.proc.wait(30) == 0, check.output()
    assert check.stdout.strip() == f"{address}: SERVING"
    check = botmon("healthcheck", address, "--service", "botmon.logs.v1.LogsService",
                   env=suite_env)
    assert check.proc.wait(30) == 0, check.output()

    run.proc.send_signal(signal.SIGTERM)
    assert run.proc.wait(20) == 0, run.output()


def test_healthcheck_fails_on_a_closed_port(botmon, suite_env):
    address = f"127.0.0.1:{free_port()}"
    run = botmon("healthcheck", address, "--timeout", "1", env=suite_env)
    assert run.proc.wait(30) == 1
    assert run.stderr.startswith(f"botmon: {address}: ")
    run = botmon("healthcheck", f"http://{address}/health/live", "--timeout", "1", env=suite_env)
    assert run.proc.wait(30) == 1
