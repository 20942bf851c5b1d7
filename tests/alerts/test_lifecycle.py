"""The alert lifecycle over gRPC, driven by a metrics stand-in whose values the test sets."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from botmon.alerts.v1 import alerts_service_pb2 as pb
from tests.alerts.conftest import INTERVAL, fast, serve
from tests.waiting import eventually

CPU = dict(name="cpu_hot", metric="cpu.usage_percent", condition="greater_than", threshold=80,
           severity="critical")


async def test_pending_then_firing_after_duration_then_resolved(alert_settings, metrics):
    async with serve(alert_settings()) as svc:
        await svc.configure(**CPU, duration_seconds=1, labels={"team": "infra"})
        metrics.values["cpu.usage_percent"] = 91
        pending = await eventually(lambda: svc.alert_of("cpu_hot", "pending"))
        assert pending.alert_id.startswith("alt_") and pending.current_value == 91
        assert pending.labels == {"team": "infra", "alertname": "cpu_hot", "severity": "critical"}
        listed = await svc.alerts()
        assert (listed.active_count, listed.pending_count, listed.critical_count) == (0, 1, 0)

        firing = await eventually(lambda: svc.alert_of("cpu_hot", "firing"), within=5)
        held = firing.fired_at.ToNanoseconds() - firing.triggered_at.ToNanoseconds()
        # Fires on the first cycle after the condition held for 1 s: within one interval more.
        assert 1e9 <= held <= (1 + 2 * INTERVAL) * 1e9
        assert firing.alert_id == pending.alert_id and firing.fingerprint == pending.fingerprint
        assert firing.type == "cpu_hot" and firing.threshold == 80 and firing.severity == "critical"
        listed = await svc.alerts()
        assert (listed.active_count, listed.critical_count, listed.warning_count) == (1, 1, 0)

        metrics.values["cpu.usage_percent"] = 20
        await eventually(lambda: svc.gone("cpu_hot"))
        await eventually(lambda: svc.transitions("cpu_hot"))
        assert await svc.transitions("cpu_hot") == [("", "pending"), ("pending", "firing"),
                                                    ("firing", "resolved")]


async def test_pending_that_stops_holding_never_fires(alert_settings, metrics):
    async with serve(alert_settings()) as svc:
        await svc.configure(**CPU, duration_seconds=30)
        metrics.values["cpu.usage_percent"] = 91
        await eventually(lambda: svc.alert_of("cpu_hot", "pending"))
        metrics.values["cpu.usage_percent"] = 10
        await eventually(lambda: svc.gone("cpu_hot"))
        assert await svc.transitions("cpu_hot") == [("", "pending"), ("pending", "inactive")]


async def test_zero_duration_fires_at_once(alert_settings, metrics):
    async with serve(alert_settings()) as svc:
        await svc.configure(**CPU)
        metrics.values["cpu.usage_percent"] = 91
        alert = await eventually(lambda: svc.alert_of("cpu_hot", "firing"))
        assert alert.fired_at == alert.triggered_at
        assert await svc.transitions("cpu_hot") == [("", "firing")]


async def test_recurrence_after_resolution_is_a_new_alert(alert_settings, metrics):
    async with serve(alert_settings()) as svc:
        await svc.configure(**CPU)
        metrics.values["cpu.usage_percent"] = 91
        first = await eventually(lambda: svc.alert_of("cpu_hot", "firing"))
        metrics.values["cpu.usage_percent"] = 10
        await eventually(lambda: svc.gone("cpu_hot"))
        metrics.values["cpu.usage_percent"] = 92
        second = await eventually(lambda: svc.alert_of("cpu_hot", "firing"))
        assert second.alert_id != first.alert_id
        assert second.fingerprint == first.fingerprint


async def test_hysteresis_resolves_only_below_the_recovery_threshold(alert_settings, metrics):
    async with serve(alert_settings()) as svc:
        await svc.configure(**CPU, recovery_threshold=70)
        metrics.values["cpu.usage_percent"] = 85
        firing = await eventually(lambda: svc.alert_of("cpu_hot", "firing"))
        metrics.values["cpu.usage_percent"] = 75  # under the threshold, above the recovery line
        await eventually(lambda: svc.alert_of("cpu_hot", "firing"))
        await eventually(lambda: _value_is(svc, 75))
        for _ in range(4):  # several cycles: still firing, same alert
            alert = await svc.alert_of("cpu_hot")
            assert alert.state == "firing" and alert.alert_id == firing.alert_id
            await _cycles(2)
        metrics.values["cpu.usage_percent"] = 69
        await eventually(lambda: svc.gone("cpu_hot"))


async def test_keep_firing_holds_the_alert_after_the_condition_clears(alert_settings, metrics):
    async with serve(alert_settings()) as svc:
        await svc.configure(**CPU, keep_firing_seconds=1)
        metrics.values["cpu.usage_percent"] = 85
        await eventually(lambda: svc.alert_of("cpu_hot", "firing"))
        metrics.values["cpu.usage_percent"] = 10
        await eventually(lambda: _value_is(svc, 10))
        assert (await svc.alert_of("cpu_hot")).state == "firing"
        await eventually(lambda: svc.gone("cpu_hot"), within=5)
        resolved = [h for h in await svc.history(rule="cpu_hot") if h.to_state == "resolved"][0]
        cleared = [h for h in await svc.history(rule="cpu_hot") if h.to_state == "firing"][0]
        assert resolved.time.ToNanoseconds() - cleared.time.ToNanoseconds() >= 1e9


@pytest.mark.parametrize(("mode", "fires"), [("ok", False), ("alert", True), ("keep", None)])
async def test_on_no_data(alert_settings, metrics, mode, fires):
    async with serve(alert_settings()) as svc:
        await svc.configure(**CPU, on_no_data=mode)
        metrics.values["cpu.usage_percent"] = 85
        await eventually(lambda: svc.alert_of("cpu_hot", "firing"))
        del metrics.values["cpu.usage_percent"]
        calls = metrics.calls
        await eventually(lambda: metrics.calls >= calls + 4)
        alert = await svc.alert_of("cpu_hot")
        if fires is False:
            await eventually(lambda: svc.gone("cpu_hot"))
        else:
            assert alert is not None and alert.state == "firing"
            if mode == "alert":
                assert "no data" in alert.message


async def test_metrics_outage_resolves_nothing_and_raises_its_own_alert(alert_settings, metrics):
    async with serve(alert_settings()) as svc:
        await svc.configure(**CPU)
        metrics.values["cpu.usage_percent"] = 85
        firing = await eventually(lambda: svc.alert_of("cpu_hot", "firing"))
        metrics.down = True
        outage = await eventually(lambda: svc.alert_of("botmon_metrics_unreachable", "firing"),
                                  within=5)
        assert outage.severity == "critical"
        still = await svc.alert_of("cpu_hot")
        assert still.state == "firing" and still.alert_id == firing.alert_id
        metrics.down = False
        await eventually(lambda: svc.gone("botmon_metrics_unreachable"))
        assert (await svc.alert_of("cpu_hot")).alert_id == firing.alert_id
        assert await svc.transitions("botmon_metrics_unreachable") == [
            ("", "firing"), ("firing", "resolved")]


async def test_replacing_or_deleting_a_rule_resolves_its_alert(alert_settings, metrics):
    async with serve(alert_settings()) as svc:
        await svc.configure(**CPU)
        metrics.values["cpu.usage_percent"] = 85
        first = await eventually(lambda: svc.alert_of("cpu_hot", "firing"))
        await svc.configure(**{**CPU, "threshold": 82})
        second = await eventually(lambda: _other_alert(svc, first.alert_id))
        assert second.state == "firing"
        details = [h.detail for h in await svc.history(alert_id=first.alert_id)
                   if h.to_state == "resolved"]
        assert details == ["rule replaced"]
        await svc.stub.DeleteAlertRule(pb.DeleteAlertRuleRequest(name="cpu_hot"), timeout=10)
        await eventually(lambda: svc.gone("cpu_hot"))
        assert [h.detail for h in await svc.history(alert_id=second.alert_id)
                if h.to_state == "resolved"] == ["rule deleted"]


async def test_list_filters_and_bad_filters(alert_settings, metrics):
    async with serve(alert_settings()) as svc:
        await svc.configure(**CPU)
        await svc.configure(name="mem", metric="memory.usage_percent", condition="greater_than",
                            threshold=30, severity="warning", duration_seconds=60)
        metrics.values["cpu.usage_percent"] = 85
        await eventually(lambda: svc.alert_of("cpu_hot", "firing"))
        await eventually(lambda: svc.alert_of("mem", "pending"))
        assert [a.rule for a in (await svc.alerts(state="pending")).alerts] == ["mem"]
        assert [a.rule for a in (await svc.alerts(severity="critical")).alerts] == ["cpu_hot"]
        default = await svc.alerts()
        assert [a.rule for a in default.alerts] == ["cpu_hot"]  # GET /alerts: firing ones
        assert (default.active_count, default.pending_count, default.critical_count) == (1, 1, 1)
        assert not (await svc.alerts(severity="warning")).alerts
        for bad in ({"state": "resolvedish"}, {"severity": "urgent"}):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await svc.alerts(**bad)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "must be one of" in err.value.details()


async def test_description_template_fills_the_message(alert_settings, metrics):
    async with serve(alert_settings(), fast()) as svc:
        await svc.configure(**CPU, duration_seconds=0,
                            description="CPU usage above {threshold}% for {duration}: {value}%")
        metrics.values["cpu.usage_percent"] = 85.5
        alert = await eventually(lambda: svc.alert_of("cpu_hot", "firing"))
        assert alert.message == "CPU usage above 80% for 0 seconds: 85.5%"


async def _value_is(svc, value):
    alert = await svc.alert_of("cpu_hot")
    return alert is not None and alert.current_value == value


async def _other_alert(svc, alert_id):
    alert = await svc.alert_of("cpu_hot")
    return alert if alert is not None and alert.alert_id != alert_id else None


async def _cycles(n: int) -> None:
    await asyncio.sleep(n * INTERVAL)
