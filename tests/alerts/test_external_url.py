"""BOTMON_ALERT_EXTERNAL_URL is the address notifications link back to."""

from __future__ import annotations

from tests.alerts.conftest import fast, serve
from tests.waiting import eventually

CPU = dict(name="cpu_hot", metric="cpu.usage_percent", condition="greater_than", threshold=80,
           severity="critical")


async def test_notifications_link_to_the_external_url(alert_settings, metrics, receiver):
    # The gateway's own address differs, so only the setting can produce these links.
    settings = alert_settings(http_addr="127.0.0.1:8080")
    async with serve(settings, fast(external_url="https://botmon.example.com/ops/")) as svc:
        await svc.configure(**CPU, notify={"webhook": receiver.url("/hook")})
        metrics.values["cpu.usage_percent"] = 91
        alert = await eventually(lambda: svc.alert_of("cpu_hot", "firing"))
        [request] = await eventually(lambda: receiver.at("/hook"))
        body = request.json
        assert body["externalURL"] == "https://botmon.example.com/ops"
        assert body["alerts"][0]["generatorURL"] == (
            f"https://botmon.example.com/ops/api/v1/monitoring/alerts/history"
            f"?alert_id={alert.alert_id}")
