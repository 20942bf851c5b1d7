"""History retention: entries, ended alerts and expired silences past retention are pruned."""

from __future__ import annotations

import asyncio

from botmon.alerts.v1 import alerts_service_pb2 as pb
from services.alerts.config import AlertsSettings
from services.alerts.retention import DAY
from tests.alerts.conftest import fast, serve
from tests.alerts.test_silences_history import _silence
from tests.waiting import eventually

CPU = dict(name="cpu_hot", metric="cpu.usage_percent", condition="greater_than", threshold=80,
           severity="critical")
#: Fractional days: 1.5 seconds of retention.
SHORT = 1.5 / DAY


def test_retention_setting_is_days_and_validated():
    assert AlertsSettings.from_env({}).history_retention == 90.0
    assert AlertsSettings.from_env({"BOTMON_ALERT_HISTORY_RETENTION": "0.5"}).history_retention \
        == 0.5
    for bad in ("0", "-3", "ninety"):
        try:
            AlertsSettings.from_env({"BOTMON_ALERT_HISTORY_RETENTION": bad})
        except Exception as exc:  # ConfigError names the variable
            assert "BOTMON_ALERT_HISTORY_RETENTION" in str(exc)
        else:
            raise AssertionError(f"{bad!r} was accepted")


async def test_old_history_ended_alerts_and_silences_are_pruned(alert_settings, metrics):
    async with serve(alert_settings(), fast(history_retention=SHORT)) as svc:
        await svc.configure(**CPU)
        await svc.stub.CreateSilence(_silence({"name": "alertname", "value": "other"}, ends=0.3),
                                     timeout=10)
        metrics.values["cpu.usage_percent"] = 91
        first = await eventually(lambda: svc.alert_of("cpu_hot", "firing"))
        metrics.values["cpu.usage_percent"] = 10
        await eventually(lambda: svc.gone("cpu_hot"))
        assert await svc.transitions("cpu_hot") == [("", "firing"), ("firing", "resolved")]

        # Past retention, the first alert's entries, its row and the silence are gone...
        await eventually(lambda: _no_history(svc, first.alert_id), within=6)
        store = svc.server.engine.store
        assert not await store.db.fetch("SELECT 1 FROM alerts_alerts WHERE alert_id = ?",
                                        (first.alert_id,))
        await eventually(_no_silences(svc))
        # ...while a new alert's history is there, and the service keeps evaluating.
        metrics.values["cpu.usage_percent"] = 95
        second = await eventually(lambda: svc.alert_of("cpu_hot", "firing"))
        assert second.alert_id != first.alert_id
        assert [h.to_state for h in await svc.history(alert_id=second.alert_id)] == ["firing"]


async def test_recent_history_is_kept(alert_settings, metrics):
    async with serve(alert_settings()) as svc:  # the default 90 days
        await svc.configure(**CPU)
        metrics.values["cpu.usage_percent"] = 91
        alert = await eventually(lambda: svc.alert_of("cpu_hot", "firing"))
        assert await svc.server.engine.pruner.prune() == 0
        await asyncio.sleep(0.5)
        assert [h.to_state for h in await svc.history(alert_id=alert.alert_id)] == ["firing"]


async def _no_history(svc, alert_id: str) -> bool:
    return not await svc.history(alert_id=alert_id)


def _no_silences(svc):
    async def check() -> bool:
        return not (await svc.stub.ListSilences(pb.ListSilencesRequest(), timeout=10)).silences
    return check
