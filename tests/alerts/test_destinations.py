"""BOTMON_WEBHOOK_ALLOW: rules cannot make the suite call internal addresses unless allowed."""

from __future__ import annotations

import socket

import grpc
import pytest

from botmon.alerts.v1 import alerts_service_pb2 as pb
from botmon.runtime.config import ConfigError
from services.alerts.config import AlertsSettings
from services.alerts.destinations import DestinationPolicy
from tests.alerts.conftest import fast, serve
from tests.waiting import eventually

RULE = dict(name="cpu_hot", metric="cpu.usage_percent", condition="greater_than", threshold=80)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9000/hook", "http://169.254.169.254/latest/meta-data/",
    "http://10.1.2.3/hook", "http://192.168.0.10/", "http://[::1]:8080/", "http://localhost/x",
    "http://[::ffff:10.0.0.1]/", "http://100.64.0.1/", "http://0.0.0.0/",
])
@pytest.mark.parametrize("channel", ["webhook", "slack", "teams"])
async def test_internal_destinations_are_refused_by_default(alert_settings, metrics, channel,
                                                            url):
    async with serve(alert_settings(), fast(webhook_allow=DestinationPolicy())) as svc:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await svc.configure(**RULE, notify={channel: url})
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"notify.{channel}" in err.value.details()
        assert "BOTMON_WEBHOOK_ALLOW" in err.value.details()
        assert not (await svc.stub.ListAlertRules(pb.ListAlertRulesRequest(), timeout=5)).rules


async def test_public_and_allowed_destinations_are_accepted(alert_settings, metrics):
    policy = DestinationPolicy.parse("10.1.0.0/16, hooks.internal, *.corp.example, "
                                     "!203.0.113.0/24, !*.blocked.example")
    async with serve(alert_settings(), fast(webhook_allow=policy)) as svc:
        for url in ("https://hooks.slack.example/T1/B2", "http://10.1.2.3/hook",
                    "http://hooks.internal:8080/x", "https://a.b.corp.example/x"):
            await svc.configure(**RULE, notify={"webhook": url})
        for url in ("http://203.0.113.9/", "http://x.blocked.example/", "http://10.2.0.1/"):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await svc.configure(**RULE, notify={"webhook": url})
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_name_resolving_to_an_internal_address_is_refused_when_sending(
        alert_settings, metrics, receiver):
    """The name passes at configure time; what it resolves to is judged at send time."""
    host = socket.gethostname()
    addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    if not addresses or any(not DestinationPolicy().problem(f"http://{a}/") for a in addresses):
        pytest.skip(f"{host} does not resolve to internal addresses only")
    url = receiver.url("/hook").replace("127.0.0.1", host)
    async with serve(alert_settings(), fast(webhook_allow=DestinationPolicy())) as svc:
        await svc.configure(**RULE, notify={"webhook": url})
        metrics.values["cpu.usage_percent"] = 95
        alert = await eventually(lambda: svc.alert_of("cpu_hot", "firing"))

        async def refused():
            return [h.delivery for h in await svc.history(alert_id=alert.alert_id)
                    if h.kind == "delivery"]
        [delivery] = await eventually(refused)
        assert not delivery.success
        assert "BOTMON_WEBHOOK_ALLOW" in delivery.error
        assert receiver.at("/hook") == []


def test_bad_allow_list_names_the_variable():
    with pytest.raises(ConfigError, match="^BOTMON_WEBHOOK_ALLOW: "):
        AlertsSettings.from_env({"BOTMON_WEBHOOK_ALLOW": "10.0.0.0/8, not a host!"})
