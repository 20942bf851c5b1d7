"""Fixtures of the security tests."""

from __future__ import annotations

import contextlib

import httpx
import pytest

from services.alerts.config import AlertsSettings
from tests.alerts.conftest import fast
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
