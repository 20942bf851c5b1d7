"""Fixtures for the alerts service: stand-in receivers and metrics, and the service itself."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest

from botmon.alerts.v1 import alert_pb2, alerts_service_pb2_grpc
from botmon.alerts.v1 import alerts_service_pb2 as pb
from botmon.runtime.config import Settings
from services.alerts.__main__ import create_server
from services.alerts.config import AlertsSettings
from services.alerts.destinations import DestinationPolicy
from tests.alerts.stand_ins import Mailbox, MetricsStandIn, Receiver, free_port
from tests.conftest import suite_channel

#: Small intervals so the lifecycle runs in fractions of a second.
INTERVAL = 0.2
#: The receivers listen on loopback, which rules may notify only when allowed.
LOOPBACK = DestinationPolicy.parse("127.0.0.0/8")
FAST = AlertsSettings(default_rules=False, notify_timeout=2.0, notify_attempts=5,
                      retry_initial=0.05, retry_max=0.2, dispatch_poll=0.1,
                      unreachable_grace=0.6, webhook_allow=LOOPBACK)


@dataclass
class Running:
    """A started alerts service and a stub to call it."""

    server: object
    channel: grpc.aio.Channel
    stub: alerts_service_pb2_grpc.AlertsServiceStub

    async def configure(self, **fields) -> pb.ConfigureAlertRuleResponse:
        notify = fields.pop("notify", None)
        rule = alert_pb2.AlertRule(**fields)
        if notify:
            rule.notify.CopyFrom(alert_pb2.Notify(**notify))
        return await self.stub.ConfigureAlertRule(pb.ConfigureAlertRuleRequest(rule=rule),
                                                  timeout=10)

    async def alerts(self, **filters) -> pb.ListAlertsResponse:
        return await self.stub.ListAlerts(pb.ListAlertsRequest(**filters), timeout=10)

    async def alert_of(self, rule: str, state: str | None = None):
        """The active alert of ``rule`` (in ``state`` if given), or None."""
        for listed in (state,) if state else ("firing", "pending"):
            for alert in (await self.alerts(state=listed)).alerts:
                if alert.rule == rule:
                    return alert
        return None

    async def gone(self, rule: str) -> bool:
        """True once ``rule`` has no active alert."""
        return await self.alert_of(rule) is None

    async def history(self, **filters) -> list[alert_pb2.HistoryEntry]:
        entries, token = [], ""
        while True:
            page = await self.stub.ListAlertHistory(
                pb.ListAlertHistoryRequest(page_token=token, page_size=1000, **filters),
                timeout=10)
            entries.extend(page.history)
            token = page.next_page_token
            if not token:
                return entries[::-1]

    async def transitions(self, rule: str) -> list[tuple[str, str]]:
        return [(h.from_state, h.to_state) for h in await self.history(rule=rule)
                if h.kind == "transition"]


@contextlib.asynccontextmanager
async def serve(settings: Settings, alerts: AlertsSettings = FAST) -> AsyncIterator[Running]:
    server = await create_server(settings, address="127.0.0.1:0", alerts_settings=alerts)
    async with server:
        channel = suite_channel(f"127.0.0.1:{server.port}", settings)
        try:
            yield Running(server, channel, alerts_service_pb2_grpc.AlertsServiceStub(channel))
        finally:
            await channel.close()


@pytest.fixture
async def metrics():
    stand_in = MetricsStandIn({"cpu.usage_percent": 10.0, "memory.usage_percent": 40.0,
                               "disk.free_percent": 50.0, "requests.average_latency_ms": 20.0,
                               "requests.error_rate": 0.0, "requests.p99_latency_ms": 50.0})
    await stand_in.start()
    yield stand_in
    await stand_in.stop()


@pytest.fixture
async def receiver():
    recv = Receiver()
    await recv.start()
    yield recv
    await recv.stop()


@pytest.fixture
def mailbox():
    box = Mailbox()
    box.start()
    yield box
    box.stop()


@pytest.fixture
def alert_settings(make_settings, metrics, receiver, mailbox):
    """Suite settings wired to the stand-ins; health is a closed port (heartbeats just fail)."""

    def make(**overrides) -> Settings:
        base = dict(metrics_target=metrics.target, health_target=f"127.0.0.1:{free_port()}",
                    alert_eval_interval=INTERVAL, grpc_deadline=2.0, heartbeat_interval=60.0,
                    smtp_host="127.0.0.1", smtp_port=mailbox.port,
                    pagerduty_url=receiver.url("/pagerduty"), sms_gateway_url=receiver.url("/sms"),
                    http_addr="127.0.0.1:8080")
        return make_settings(**{**base, **overrides})

    return make


def fast(**changes) -> AlertsSettings:
    return dataclasses.replace(FAST, **changes)
