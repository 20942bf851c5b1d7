"""Notifications to real local receivers: payload shapes, signature, retries, acks, repeats."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from datetime import datetime
from email.utils import getaddresses

import grpc
import pytest

from botmon.alerts.v1 import alerts_service_pb2 as pb
from botmon.runtime.credentials import INTERNAL_SUBJECT
from tests.alerts.conftest import fast, serve
from tests.alerts.stand_ins import Mailbox, self_signed
from tests.waiting import eventually

CPU = dict(name="cpu_hot", metric="cpu.usage_percent", condition="greater_than", threshold=80,
           severity="critical", labels={"team": "infra"})


def _time(text: str) -> datetime:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def _deliveries(svc, **filters):
    return [h.delivery for h in await svc.history(**filters) if h.kind == "delivery"]


async def test_webhook_is_alertmanager_v4_and_signed(alert_settings, metrics, receiver):
    async with serve(alert_settings(http_addr="127.0.0.1:8080")) as svc:
        await svc.configure(**CPU, secret="topsecret",
                            notify={"webhook": receiver.url("/hook?team=infra")})
        metrics.values["cpu.usage_percent"] = 91
        alert = await eventually(lambda: svc.alert_of("cpu_hot", "firing"))
        [request] = await eventually(lambda: receiver.at("/hook"))
        expected = "sha256=" + hmac.new(b"topsecret", request.body, hashlib.sha256).hexdigest()
        assert request.headers["X-Botmon-Signature"] == expected
        assert request.headers["Content-Type"] == "application/json"
        body = request.json
        assert set(body) == {"version", "groupKey", "truncatedAlerts", "status", "receiver",
                             "groupLabels", "commonLabels", "commonAnnotations", "externalURL",
                             "alerts"}
        assert body["version"] == "4"
        assert body["groupKey"] == '{}:{alertname="cpu_hot"}'
        assert body["truncatedAlerts"] == 0
        assert body["status"] == "firing"
        assert body["receiver"] == "cpu_hot"
        assert body["groupLabels"] == {"alertname": "cpu_hot"}
        labels = {"alertname": "cpu_hot", "severity": "critical", "team": "infra"}
        assert body["commonLabels"] == labels
        assert body["commonAnnotations"]["summary"] == alert.message
        assert body["commonAnnotations"]["alert_id"] == alert.alert_id
        assert body["externalURL"] == "http://127.0.0.1:8080"
        [item] = body["alerts"]
        assert set(item) == {"status", "labels", "annotations", "startsAt", "endsAt",
                             "generatorURL", "fingerprint"}
        assert item["status"] == "firing" and item["labels"] == labels
        assert item["annotations"] == body["commonAnnotations"]
        assert abs(_time(item["startsAt"]).timestamp() - alert.fired_at.ToNanoseconds() / 1e9) < 0.01
        assert item["endsAt"] == "0001-01-01T00:00:00Z"
        assert item["generatorURL"].startswith("http://127.0.0.1:8080/api/v1/monitoring/alerts/")
        assert alert.alert_id in item["generatorURL"]
        assert item["fingerprint"] == alert.fingerprint

        metrics.values["cpu.usage_percent"] = 10
        resolved = (await eventually(lambda: receiver.at("/hook")[1:]))[0]
        assert resolved.headers["X-Botmon-Signature"] == "sha256=" + hmac.new(
            b"topsecret", resolved.body, hashlib.sha256).hexdigest()
        body = resolved.json
        assert body["status"] == "resolved" and body["alerts"][0]["status"] == "resolved"
        assert _time(body["alerts"][0]["endsAt"]) > _time(body["alerts"][0]["startsAt"])
        assert body["alerts"][0]["fingerprint"] == alert.fingerprint
        deliveries = await _deliveries(svc, alert_id=alert.alert_id)
        assert [(d.channel, d.kind, d.attempt, d.status_code, d.success) for d in deliveries] == [
            ("webhook", "firing", 1, 200, True), ("webhook", "resolved", 1, 200, True)]
        assert deliveries[0].target == f"http://127.0.0.1:{receiver.port}/hook"


async def test_unsigned_webhook_without_secret(alert_settings, metrics, receiver):
    async with serve(alert_settings()) as svc:
        await svc.configure(**CPU, notify={"webhook": receiver.url("/plain")})
        metrics.values["cpu.usage_percent"] = 91
        [request] = await eventually(lambda: receiver.at("/plain"))
        assert "X-Botmon-Signature" not in request.headers


async def test_slack_teams_pagerduty_firing_acknowledge_resolve(alert_settings, metrics, receiver):
    async with serve(alert_settings()) as svc:
        await svc.configure(**CPU, notify={"slack": receiver.url("/slack"),
                                           "teams": receiver.url("/teams"),
                                           "pagerduty": "R0UT1NGKEY0123456789abcdefABCDEF"})
        metrics.values["cpu.usage_percent"] = 91
        alert = await eventually(lambda: svc.alert_of("cpu_hot", "firing"))
        [slack] = await eventually(lambda: receiver.at("/slack"))
        [teams] = await eventually(lambda: receiver.at("/teams"))
        [trigger] = await eventually(lambda: receiver.at("/pagerduty"))

        blocks = slack.json["blocks"]
        assert "[FIRING] cpu_hot (critical)" in slack.json["text"]
        assert blocks[0]["type"] == "header" and blocks[0]["text"]["type"] == "plain_text"
        assert "[FIRING] cpu_hot" in blocks[0]["text"]["text"]
        assert blocks[1]["type"] == "section" and blocks[1]["text"]["text"] == alert.message
        assert {"type": "mrkdwn", "text": "*Severity*\ncritical"} in blocks[1]["fields"]
        assert blocks[-1]["type"] == "context"

        assert teams.json["type"] == "message"
        [attachment] = teams.json["attachments"]
        assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
        card = attachment["content"]
        assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
        assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
        assert card["body"][0]["type"] == "TextBlock" and "[FIRING]" in card["body"][0]["text"]
        facts = {f["title"]: f["value"] for f in card["body"][2]["facts"]}
        assert facts["Severity"] == "critical" and facts["Alert"] == alert.alert_id
        assert card["actions"][0]["type"] == "Action.OpenUrl"

        event = trigger.json
        assert event["routing_key"] == "R0UT1NGKEY0123456789abcdefABCDEF"
        assert event["event_action"] == "trigger" and event["dedup_key"] == alert.alert_id
        assert event["payload"]["source"] == "botmon"
        assert event["payload"]["severity"] == "critical"
        assert alert.message in event["payload"]["summary"]
        _time(event["payload"]["timestamp"])

        acked = await svc.stub.AcknowledgeAlert(
            pb.AcknowledgeAlertRequest(alert_id=alert.alert_id, notes="Investigating the issue"),
            metadata=(("x-botmon-subject", "alice"),), timeout=10)
        assert acked.alert.acknowledged and acked.alert.acknowledged_by == "alice"
        assert acked.alert.notes == "Investigating the issue"
        assert acked.alert.acknowledged_at.seconds > 0
        ack = (await eventually(lambda: receiver.at("/pagerduty")[1:]))[0].json
        assert ack == {"routing_key": "R0UT1NGKEY0123456789abcdefABCDEF",
                       "event_action": "acknowledge", "dedup_key": alert.alert_id}
        slack_ack = (await eventually(lambda: receiver.at("/slack")[1:]))[0].json
        assert "[ACKNOWLEDGED] cpu_hot (critical) by alice" in slack_ack["text"]
        assert any("Investigating the issue" in b.get("text", {}).get("text", "")
                   for b in slack_ack["blocks"])
        teams_ack = (await eventually(lambda: receiver.at("/teams")[1:]))[0].json
        facts = {f["title"]: f["value"]
                 for f in teams_ack["attachments"][0]["content"]["body"][2]["facts"]}
        assert facts["Acknowledged by"] == "alice" and facts["Notes"] == "Investigating the issue"
        # The alert stays visible, acknowledged, until it resolves.
        listed = await svc.alert_of("cpu_hot")
        assert listed.acknowledged and listed.acknowledged_by == "alice"

        metrics.values["cpu.usage_percent"] = 10
        resolve = (await eventually(lambda: receiver.at("/pagerduty")[2:]))[0].json
        assert resolve == {"routing_key": "R0UT1NGKEY0123456789abcdefABCDEF",
                           "event_action": "resolve", "dedup_key": alert.alert_id}
        slack_resolved = (await eventually(lambda: receiver.at("/slack")[2:]))[0].json
        assert "[RESOLVED]" in slack_resolved["text"]
        teams_resolved = (await eventually(lambda: receiver.at("/teams")[2:]))[0].json
        assert "[RESOLVED]" in teams_resolved["attachments"][0]["content"]["body"][0]["text"]
        kinds = [(h.kind, h.detail) for h in await svc.history(alert_id=alert.alert_id)
                 if h.kind == "acknowledgement"]
        assert kinds == [("acknowledgement", "alice: Investigating the issue")]


async def test_acknowledge_errors(alert_settings, metrics):
    async with serve(alert_settings()) as svc:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await svc.stub.AcknowledgeAlert(pb.AcknowledgeAlertRequest(
                alert_id="alt_0000000000000000", acknowledged_by="bob"), timeout=10)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        await svc.configure(**CPU)
        metrics.values["cpu.usage_percent"] = 91
        alert = await eventually(lambda: svc.alert_of("cpu_hot", "firing"))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await svc.stub.AcknowledgeAlert(pb.AcknowledgeAlertRequest(
                alert_id=alert.alert_id, acknowledged_by="bob", notes="x" * 5000), timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        # Every call is authenticated: without acknowledged_by the caller's subject acts
        # (here the suite's own, as the test's channel carries the internal credential).
        reply = await svc.stub.AcknowledgeAlert(
            pb.AcknowledgeAlertRequest(alert_id=alert.alert_id), timeout=10)
        assert reply.alert.acknowledged_by == INTERNAL_SUBJECT
        metrics.values["cpu.usage_percent"] = 10
        await eventually(lambda: svc.gone("cpu_hot"))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await svc.stub.AcknowledgeAlert(pb.AcknowledgeAlertRequest(
                alert_id=alert.alert_id, acknowledged_by="bob"), timeout=10)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_sms_one_post_per_number_and_email(alert_settings, metrics, receiver, mailbox):
    async with serve(alert_settings()) as svc:
        await svc.configure(**CPU, notify={"sms": ["+15551234567", "+15557654321"],
                                           "email": ["ops@example.com", "oncall@example.com"]})
        metrics.values["cpu.usage_percent"] = 91
        alert = await eventually(lambda: svc.alert_of("cpu_hot", "firing"))
        sms = await eventually(lambda: len(receiver.at("/sms")) == 2 and receiver.at("/sms"))
        assert sorted(r.json["to"] for r in sms) == ["+15551234567", "+15557654321"]
        for request in sms:
            body = request.json
            assert set(body) == {"to", "message", "alert_id", "status", "severity"}
            assert body["status"] == "firing" and body["alert_id"] == alert.alert_id
            assert len(body["message"]) <= 160 and body["message"].startswith("[FIRING] cpu_hot")
        [(recipients, message)] = await eventually(lambda: mailbox.messages)
        assert recipients == ["ops@example.com", "oncall@example.com"]
        assert message["Subject"].startswith("[FIRING] cpu_hot (critical)")
        assert message["X-Botmon-Alert-Id"] == alert.alert_id
        assert alert.message in message.get_payload()
        deliveries = await _deliveries(svc, alert_id=alert.alert_id)
        email = [d for d in deliveries if d.channel == "email"]
        assert [(d.status_code, d.success) for d in email] == [(250, True)]
        assert email[0].target == "ops@example.com, oncall@example.com"

        metrics.values["cpu.usage_percent"] = 10
        await eventually(lambda: len(mailbox.messages) == 2)
        assert mailbox.messages[1][1]["Subject"].startswith("[RESOLVED] cpu_hot")
        await eventually(lambda: len(receiver.at("/sms")) == 4)
        assert {r.json["status"] for r in receiver.at("/sms")[2:]} == {"resolved"}


#: Every form the validator accepts, at its edges; each must reach the relay as written.
SENDABLE = ["o'brien+alerts@example.com", "First.Last@Mail.Example-Host.COM",
            "!#$%&'*+-/?=^_`{|}~@example.com", "a?=b@example.com", "ops@xn--bcher-kva.example",
            "x" * 64 + "@" + ".".join(["a" * 63] * 2) + ".example.com", "1@2.3"]


async def test_every_accepted_address_is_delivered_as_written(alert_settings, mailbox):
    async with serve(alert_settings(smtp_from="alerts+botmon@example.com")) as svc:
        await svc.configure(**CPU, notify={"email": SENDABLE})
        tested = await svc.stub.TestAlertRule(pb.TestAlertRuleRequest(name="cpu_hot"),
                                              timeout=10)
        assert [(d.channel, d.success) for d in tested.deliveries] == [("email", True)], tested
        [(recipients, message)] = mailbox.messages
        assert recipients == SENDABLE
        assert [address for _, address in getaddresses([message["To"]])] == SENDABLE
        assert message["From"] == "alerts+botmon@example.com"


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_email_with_smtp_auth(alert_settings, metrics):
    box = Mailbox(login=("botmon", "pa55word"))
    box.start()
    try:
        settings = alert_settings(smtp_port=box.port, smtp_user="botmon",
                                  smtp_password="pa55word", smtp_from="alerts@botmon.test",
                                  smtp_allow_plaintext_auth=True)
        async with serve(settings) as svc:
            await svc.configure(**CPU, notify={"email": ["ops@example.com"]})
            metrics.values["cpu.usage_percent"] = 91
            [(_, message)] = await eventually(lambda: box.messages)
            assert message["From"] == "alerts@botmon.test" and box.logins == ["botmon"]
    finally:
        box.stop()


async def test_email_over_starttls_with_auth(alert_settings, metrics, tmp_path):
    cert, key = self_signed(tmp_path)
    box = Mailbox(login=("botmon", "pa55word"), tls=(cert, key))
    box.start()
    try:
        settings = alert_settings(smtp_port=box.port, smtp_user="botmon",
                                  smtp_password="pa55word", smtp_starttls=True)
        async with serve(settings, fast(smtp_ca_file=cert)) as svc:
            await svc.configure(**CPU, notify={"email": ["ops@example.com"]})
            metrics.values["cpu.usage_percent"] = 91
            [(_, message)] = await eventually(lambda: box.messages)
            assert message["Subject"].startswith("[FIRING] cpu_hot") and box.logins == ["botmon"]
    finally:
        box.stop()


async def test_starttls_refused_by_an_untrusted_certificate_is_recorded(alert_settings, metrics,
                                                                        tmp_path):
    box = Mailbox(tls=self_signed(tmp_path))
    box.start()
    try:
        async with serve(alert_settings(smtp_port=box.port, smtp_starttls=True)) as svc:
            await svc.configure(**CPU, notify={"email": ["ops@example.com"]})
            metrics.values["cpu.usage_percent"] = 91
            alert = await eventually(lambda: svc.alert_of("cpu_hot", "firing"))
            # The failure is retried: more attempts may be recorded by the time this looks.
            first, *_ = await eventually(lambda: _n_deliveries(svc, alert.alert_id, 1))
            assert not first.success and "CERTIFICATE_VERIFY_FAILED" in first.error
            assert box.messages == []
    finally:
        box.stop()


async def test_retries_after_the_receiver_fails_twice(alert_settings, metrics, receiver):
    receiver.fail("/flaky", 500, 503)
    async with serve(alert_settings()) as svc:
        await svc.configure(**CPU, notify={"webhook": receiver.url("/flaky")})
        metrics.values["cpu.usage_percent"] = 91
        alert = await eventually(lambda: svc.alert_of("cpu_hot", "firing"))
        await eventually(lambda: len(receiver.at("/flaky")) == 3)
        deliveries = await eventually(lambda: _n_deliveries(svc, alert.alert_id, 3))
        assert [(d.attempt, d.status_code, d.success) for d in deliveries] == [
            (1, 500, False), (2, 503, False), (3, 200, True)]
        assert "HTTP 500" in deliveries[0].error and deliveries[2].error == ""
        # The same notification each time, not three different ones.
        bodies = {r.body for r in receiver.at("/flaky")}
        assert len(bodies) == 1
        gaps = [b.time - a.time for a, b in zip(receiver.at("/flaky"), receiver.at("/flaky")[1:],
                                                strict=False)]
        assert gaps[1] > gaps[0] * 0.5  # backoff grows (0.05 s then 0.1 s steps, with jitter)
        await asyncio.sleep(0.5)
        assert len(receiver.at("/flaky")) == 3


async def test_client_error_is_not_retried(alert_settings, metrics, receiver):
    receiver.fail("/gone", 404)
    async with serve(alert_settings()) as svc:
        await svc.configure(**CPU, notify={"webhook": receiver.url("/gone")})
        metrics.values["cpu.usage_percent"] = 91
        alert = await eventually(lambda: svc.alert_of("cpu_hot", "firing"))
        [delivery] = await eventually(lambda: _n_deliveries(svc, alert.alert_id, 1))
        assert (delivery.status_code, delivery.success) == (404, False)
        await asyncio.sleep(0.5)
        assert len(receiver.at("/gone")) == 1
        [entry] = [h for h in await svc.history(alert_id=alert.alert_id) if h.kind == "delivery"]
        assert entry.detail == "gave up"


async def test_hanging_channel_does_not_delay_the_others(alert_settings, metrics, receiver):
    receiver.fail("/hang", "hang")
    async with serve(alert_settings(), fast(notify_timeout=3.0)) as svc:
        await svc.configure(**CPU, notify={"webhook": receiver.url("/hang"),
                                           "slack": receiver.url("/slack")})
        metrics.values["cpu.usage_percent"] = 91
        alert = await eventually(lambda: svc.alert_of("cpu_hot", "firing"))
        await eventually(lambda: receiver.at("/slack"))
        deliveries = await eventually(lambda: _n_deliveries(svc, alert.alert_id, 1))
        # Slack was delivered while the webhook attempt was still waiting for its answer.
        assert [d.channel for d in deliveries] == ["slack"]
        assert receiver.at("/hang")
        hung = await eventually(lambda: _n_deliveries(svc, alert.alert_id, 2), within=8)
        assert hung[1].channel == "webhook" and "no answer within 3s" in hung[1].error
        await eventually(lambda: len(receiver.at("/hang")) == 2)


async def test_repeat_interval_until_acknowledged(alert_settings, metrics, receiver):
    async with serve(alert_settings()) as svc:
        await svc.configure(**CPU, repeat_interval_seconds=1,
                            notify={"webhook": receiver.url("/hook")})
        metrics.values["cpu.usage_percent"] = 91
        alert = await eventually(lambda: svc.alert_of("cpu_hot", "firing"))
        await eventually(lambda: len(receiver.at("/hook")) >= 3, within=6)
        times = [r.time for r in receiver.at("/hook")]
        assert all(0.9 <= b - a <= 1.6 for a, b in zip(times, times[1:], strict=False)), times
        kinds = [d.kind for d in await _deliveries(svc, alert_id=alert.alert_id)]
        assert kinds[:3] == ["firing", "repeat", "repeat"]
        await svc.stub.AcknowledgeAlert(pb.AcknowledgeAlertRequest(
            alert_id=alert.alert_id, acknowledged_by="bob"), timeout=10)
        await asyncio.sleep(0.3)  # a repeat already in flight may still land
        count = len(receiver.at("/hook"))
        await asyncio.sleep(2.5)
        assert len(receiver.at("/hook")) == count
        metrics.values["cpu.usage_percent"] = 10
        last = (await eventually(lambda: receiver.at("/hook")[count:]))[0]
        assert last.json["status"] == "resolved"


async def test_test_notification_reports_each_channel(alert_settings, receiver, mailbox):
    receiver.fail("/broken", 500)
    async with serve(alert_settings()) as svc:
        await svc.configure(**CPU, notify={"webhook": receiver.url("/broken"),
                                           "slack": receiver.url("/slack"),
                                           "email": ["ops@example.com"]})
        response = await svc.stub.TestAlertRule(pb.TestAlertRuleRequest(name="cpu_hot"),
                                                timeout=30)
        by_channel = {d.channel: d for d in response.deliveries}
        assert set(by_channel) == {"webhook", "slack", "email"}
        assert by_channel["slack"].success and by_channel["slack"].status_code == 200
        assert by_channel["email"].success and by_channel["email"].status_code == 250
        assert not by_channel["webhook"].success and by_channel["webhook"].status_code == 500
        assert all(d.kind == "test" for d in response.deliveries)
        assert "[TEST] cpu_hot" in receiver.at("/slack")[0].json["text"]
        assert mailbox.messages[0][1]["Subject"].startswith("[TEST] cpu_hot")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await svc.stub.TestAlertRule(pb.TestAlertRuleRequest(name="nope"), timeout=10)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        await svc.configure(name="quiet", metric="cpu.usage_percent", condition="greater_than",
                            threshold=1)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await svc.stub.TestAlertRule(pb.TestAlertRuleRequest(name="quiet"), timeout=10)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def _n_deliveries(svc, alert_id: str, n: int):
    deliveries = await _deliveries(svc, alert_id=alert_id)
    return deliveries if len(deliveries) >= n else None
