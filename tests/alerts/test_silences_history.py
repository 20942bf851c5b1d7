"""Silences (matchers, expiry, no notifications) and history (filters, cursor pagination)."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from botmon.alerts.v1 import alert_pb2
from botmon.alerts.v1 import alerts_service_pb2 as pb
from tests.alerts.conftest import serve
from tests.waiting import eventually

CPU = dict(name="cpu_hot", metric="cpu.usage_percent", condition="greater_than", threshold=80,
           severity="critical", labels={"team": "infra"})


def _at(seconds_from_now: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(int((time.time() + seconds_from_now) * 1e9))
    return ts


def _silence(*matchers, ends=3600.0, **fields) -> pb.CreateSilenceRequest:
    return pb.CreateSilenceRequest(silence=alert_pb2.Silence(
        matchers=[alert_pb2.Matcher(**m) for m in matchers], ends_at=_at(ends), **fields))


async def test_silenced_alert_is_shown_recorded_and_notifies_no_one(alert_settings, metrics,
                                                                     receiver):
    async with serve(alert_settings()) as svc:
        await svc.configure(**CPU, notify={"webhook": receiver.url("/hook")})
        created = (await svc.stub.CreateSilence(
            _silence({"name": "alertname", "value": "cpu_.*", "is_regex": True},
                     {"name": "severity", "value": "warning", "is_negative": True},
                     comment="maintenance"),
            metadata=(("x-botmon-subject", "carol"),), timeout=10)).silence
        assert created.silence_id.startswith("sil_") and created.state == "active"
        assert created.created_by == "carol"
        metrics.values["cpu.usage_percent"] = 91
        alert = await eventually(lambda: svc.alert_of("cpu_hot", "firing"))
        assert alert.silenced
        await asyncio.sleep(0.6)
        assert receiver.at("/hook") == []
        fired = [h for h in await svc.history(alert_id=alert.alert_id) if h.to_state == "firing"]
        assert fired[0].detail == "silenced"

        expired = (await svc.stub.ExpireSilence(
            pb.ExpireSilenceRequest(silence_id=created.silence_id), timeout=10)).silence
        assert expired.state == "expired"
        # Once unsilenced, the still-firing alert is notified.
        [request] = await eventually(lambda: receiver.at("/hook"))
        assert request.json["status"] == "firing"
        assert not (await svc.alert_of("cpu_hot")).silenced
        listed = (await svc.stub.ListSilences(pb.ListSilencesRequest(state="expired"),
                                              timeout=10)).silences
        assert [s.silence_id for s in listed] == [created.silence_id]
        assert not (await svc.stub.ListSilences(pb.ListSilencesRequest(state="active"),
                                                timeout=10)).silences


async def test_non_matching_silence_mutes_nothing(alert_settings, metrics, receiver):
    async with serve(alert_settings()) as svc:
        await svc.configure(**CPU, notify={"webhook": receiver.url("/hook")})
        await svc.stub.CreateSilence(_silence({"name": "team", "value": "web"}), timeout=10)
        await svc.stub.CreateSilence(_silence({"name": "alertname", "value": "cpu_hot"},
                                              {"name": "severity", "value": "critical",
                                               "is_negative": True}), timeout=10)
        metrics.values["cpu.usage_percent"] = 91
        alert = await eventually(lambda: svc.alert_of("cpu_hot", "firing"))
        assert not alert.silenced
        await eventually(lambda: receiver.at("/hook"))


async def test_silence_that_has_not_started_does_not_mute(alert_settings, metrics, receiver):
    async with serve(alert_settings()) as svc:
        await svc.configure(**CPU, notify={"webhook": receiver.url("/hook")})
        later = (await svc.stub.CreateSilence(pb.CreateSilenceRequest(silence=alert_pb2.Silence(
            matchers=[alert_pb2.Matcher(name="alertname", value="cpu_hot")],
            starts_at=_at(600), ends_at=_at(1200))), timeout=10)).silence
        assert later.state == "pending"
        metrics.values["cpu.usage_percent"] = 91
        await eventually(lambda: receiver.at("/hook"))


BAD_SILENCES = [
    (_silence(), "at least one matcher"),
    (_silence({"name": "", "value": "x"}), "matchers[0].name is required"),
    (_silence({"name": "alertname", "value": "(", "is_regex": True}), "not a valid regular"),
    (_silence({"name": "alertname", "value": "x", "is_negative": True}), "would mute every"),
    (_silence({"name": "alertname", "value": ".*", "is_regex": True}), "would mute every"),
    (_silence({"name": "alertname", "value": "x"}, ends=-10), "ends_at must be"),
    (pb.CreateSilenceRequest(silence=alert_pb2.Silence(
        matchers=[alert_pb2.Matcher(name="alertname", value="x")])), "ends_at is required"),
    (pb.CreateSilenceRequest(silence=alert_pb2.Silence(
        matchers=[alert_pb2.Matcher(name="alertname", value="x")], starts_at=_at(100),
        ends_at=_at(50))), "ends_at must be after starts_at"),
    (pb.CreateSilenceRequest(), "silence is required"),
]


async def test_bad_silences_are_invalid_argument(alert_settings):
    async with serve(alert_settings()) as svc:
        for request, message in BAD_SILENCES:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await svc.stub.CreateSilence(request, timeout=10)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, message
            assert message in err.value.details()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await svc.stub.ListSilences(pb.ListSilencesRequest(state="over"), timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await svc.stub.ExpireSilence(pb.ExpireSilenceRequest(silence_id="sil_nope"),
                                         timeout=10)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_history_pages_with_a_cursor_and_filters(alert_settings, metrics):
    async with serve(alert_settings()) as svc:
        await svc.configure(**CPU)
        await svc.configure(name="mem", metric="memory.usage_percent", condition="greater_than",
                            threshold=50, severity="warning")
        for _ in range(3):
            metrics.values["cpu.usage_percent"] = 91
            metrics.values["memory.usage_percent"] = 91
            await eventually(lambda: svc.alert_of("cpu_hot", "firing"))
            await eventually(lambda: svc.alert_of("mem", "firing"))
            metrics.values["cpu.usage_percent"] = 10
            metrics.values["memory.usage_percent"] = 10
            await eventually(lambda: svc.gone("cpu_hot"))
            await eventually(lambda: svc.gone("mem"))
        everything = await svc.history()
        assert len(everything) == 12  # 2 rules x 3 alerts x (firing, resolved)
        ids = [h.id for h in everything]
        assert ids == sorted(ids)

        seen, token = [], ""
        while True:
            page = await svc.stub.ListAlertHistory(
                pb.ListAlertHistoryRequest(page_size=4, page_token=token), timeout=10)
            assert len(page.history) <= 4
            seen.extend(h.id for h in page.history)
            token = page.next_page_token
            if not token:
                break
        assert seen == sorted(ids, reverse=True)

        cpu = await svc.history(rule="cpu_hot")
        assert len(cpu) == 6 and {h.rule for h in cpu} == {"cpu_hot"}
        warning = await svc.history(severity="warning")
        assert {h.rule for h in warning} == {"mem"}
        middle = everything[6].time
        later = await svc.history(start_time=middle)
        assert [h.id for h in later] == [h.id for h in everything
                                         if h.time.ToNanoseconds() >= middle.ToNanoseconds()]
        earlier = await svc.history(end_time=middle)
        assert len(earlier) + len(later) == 12

        for bad, message in (({"page_size": 5000}, "page_size must be between 1 and 1000"),
                             ({"page_token": "garbage"}, "page_token is not a token"),
                             ({"severity": "loud"}, "severity must be one of"),
                             ({"start_time": _at(10), "end_time": _at(0)}, "end_time must be")):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await svc.stub.ListAlertHistory(pb.ListAlertHistoryRequest(**bad), timeout=10)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert message in err.value.details()
