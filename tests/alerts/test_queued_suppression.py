"""Queued notifications re-checked before each attempt: silences mute, acknowledgements stop repeats."""

from __future__ import annotations

import asyncio

from botmon.alerts.v1 import alerts_service_pb2 as pb
from tests.alerts.conftest import fast, serve
from tests.alerts.test_silences_history import _silence
from tests.waiting import eventually

CPU = dict(name="cpu_hot", metric="cpu.usage_percent", condition="greater_than", threshold=80,
           severity="critical", labels={"team": "infra"})


async def _deliveries(svc, alert_id: str):
    return [h for h in await svc.history(alert_id=alert_id) if h.kind == "delivery"]


async def test_silence_mutes_a_notification_waiting_for_group_wait(alert_settings, metrics,
                                                                    receiver):
    async with serve(alert_settings(), fast(group_wait=1.0)) as svc:
        await svc.configure(**CPU, notify={"webhook": receiver.url("/hook"),
                                           "slack": receiver.url("/slack")})
        metrics.values["cpu.usage_percent"] = 91
        alert = await eventually(lambda: svc.alert_of("cpu_hot", "firing"))
        silence = (await svc.stub.CreateSilence(
            _silence({"name": "team", "value": "infra"}), timeout=10)).silence
        entries = await eventually(lambda: _n(svc, alert.alert_id, 2), within=5)
        assert receiver.requests == []
        assert {e.delivery.channel for e in entries} == {"webhook", "slack"}
        for entry in entries:
            assert entry.detail == f"suppressed by silence {silence.silence_id}"
            assert entry.delivery.kind == "firing" and not entry.delivery.success
            assert entry.delivery.attempt == 0
        assert await svc.server.engine.store.pending_notifications() == 0

        # The alert was never announced, so it is once the silence ends; then it resolves.
        await svc.stub.ExpireSilence(pb.ExpireSilenceRequest(silence_id=silence.silence_id),
                                     timeout=10)
        [fired] = await eventually(lambda: receiver.at("/hook"), within=5)
        assert fired.json["status"] == "firing"
        metrics.values["cpu.usage_percent"] = 10
        await eventually(lambda: len(receiver.at("/hook")) == 2)
        assert receiver.at("/hook")[1].json["status"] == "resolved"


async def test_silence_mutes_a_notification_waiting_for_a_retry(alert_settings, metrics,
                                                                 receiver):
    receiver.fail("/hook", 503)
    async with serve(alert_settings(), fast(retry_initial=1.5, retry_max=1.5)) as svc:
        await svc.configure(**CPU, notify={"webhook": receiver.url("/hook")})
        metrics.values["cpu.usage_percent"] = 91
        alert = await eventually(lambda: svc.alert_of("cpu_hot", "firing"))
        await eventually(lambda: receiver.at("/hook"))  # the first attempt failed
        await svc.stub.CreateSilence(_silence({"name": "alertname", "value": "cpu_hot"}),
                                     timeout=10)
        entries = await eventually(lambda: _n(svc, alert.alert_id, 2), within=5)
        assert [(e.delivery.attempt, e.delivery.success) for e in entries] == [(1, False),
                                                                                (1, False)]
        assert entries[1].detail.startswith("suppressed by silence sil_")
        assert len(receiver.at("/hook")) == 1


async def test_acknowledgement_stops_a_repeat_waiting_for_a_retry(alert_settings, metrics,
                                                                  receiver):
    async with serve(alert_settings(), fast(retry_initial=1.5, retry_max=1.5)) as svc:
        await svc.configure(**CPU, repeat_interval_seconds=1,
                            notify={"webhook": receiver.url("/hook")})
        metrics.values["cpu.usage_percent"] = 91
        alert = await eventually(lambda: svc.alert_of("cpu_hot", "firing"))
        await eventually(lambda: receiver.at("/hook"))
        receiver.fail("/hook", 503)  # the first repeat fails and waits for its retry
        await eventually(lambda: len(receiver.at("/hook")) == 2, within=5)
        await svc.stub.AcknowledgeAlert(pb.AcknowledgeAlertRequest(
            alert_id=alert.alert_id, acknowledged_by="bob"), timeout=10)
        entries = await eventually(lambda: _n(svc, alert.alert_id, 3), within=5)
        assert [(e.delivery.kind, e.detail) for e in entries] == [
            ("firing", "delivered"), ("repeat", "will retry"),
            ("repeat", "suppressed by acknowledgement")]
        await asyncio.sleep(1.5)
        assert len(receiver.at("/hook")) == 2
        # The resolve notification still goes out.
        metrics.values["cpu.usage_percent"] = 10
        await eventually(lambda: len(receiver.at("/hook")) == 3)
        assert receiver.at("/hook")[2].json["status"] == "resolved"


async def _n(svc, alert_id: str, n: int):
    entries = await _deliveries(svc, alert_id)
    return entries if len(entries) >= n else None


async def test_firing_retry_is_not_sent_after_the_resolve(alert_settings, metrics, receiver):
    receiver.fail("/hook", 503)
    async with serve(alert_settings(), fast(retry_initial=1.5, retry_max=1.5)) as svc:
        await svc.configure(**CPU, notify={"webhook": receiver.url("/hook")})
        metrics.values["cpu.usage_percent"] = 91
        alert = await eventually(lambda: svc.alert_of("cpu_hot", "firing"))
        await eventually(lambda: receiver.at("/hook"))  # the first attempt failed
        metrics.values["cpu.usage_percent"] = 10
        await eventually(lambda: len(receiver.at("/hook")) == 2)
        entries = await eventually(lambda: _n(svc, alert.alert_id, 3), within=5)
        assert entries[-1].delivery.kind == "firing"
        assert entries[-1].detail == "superseded: the alert resolved before delivery"
        assert [(r.status, r.json["status"]) for r in receiver.at("/hook")] == [
            (503, "firing"), (200, "resolved")]
