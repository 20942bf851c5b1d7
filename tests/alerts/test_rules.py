"""Rules over gRPC: create/replace/list/delete, validation, default rules."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from botmon.alerts.v1 import alert_pb2
from botmon.alerts.v1 import alerts_service_pb2 as pb
from tests.alerts.conftest import fast, serve

RULE = dict(name="high_memory_usage", type="threshold", metric="memory.usage_percent",
            condition="greater_than", threshold=90, duration_seconds=300, severity="warning")


async def test_create_then_replace_answers_201_then_200(alert_settings):
    async with serve(alert_settings()) as svc:
        call = svc.stub.ConfigureAlertRule(pb.ConfigureAlertRuleRequest(
            rule=alert_pb2.AlertRule(**RULE, notify=alert_pb2.Notify(
                email=["admin@example.com"], webhook="https://example.com/alerts"))), timeout=10)
        created = await call
        assert ("x-http-code", "201") in tuple(await call.initial_metadata())
        assert created.created and created.rule.name == "high_memory_usage"
        assert created.rule.repeat_interval_seconds == 14400 and created.rule.on_no_data == "ok"
        assert created.rule.create_time.seconds > 0

        call = svc.stub.ConfigureAlertRule(pb.ConfigureAlertRuleRequest(
            rule=alert_pb2.AlertRule(**{**RULE, "threshold": 95}, secret="s3cret",
                                     notify=alert_pb2.Notify(webhook="https://example.com/a"))),
            timeout=10)
        replaced = await call
        assert ("x-http-code", "200") in tuple(await call.initial_metadata())
        assert not replaced.created and replaced.rule.threshold == 95
        assert replaced.rule.has_secret and replaced.rule.secret == ""
        assert replaced.rule.create_time == created.rule.create_time
        assert replaced.rule.update_time.ToNanoseconds() > created.rule.update_time.ToNanoseconds()

        rules = (await svc.stub.ListAlertRules(pb.ListAlertRulesRequest(), timeout=10)).rules
        assert [r.name for r in rules] == ["high_memory_usage"]
        assert rules[0].threshold == 95 and rules[0].secret == ""

        await svc.stub.DeleteAlertRule(pb.DeleteAlertRuleRequest(name="high_memory_usage"),
                                       timeout=10)
        assert not (await svc.stub.ListAlertRules(pb.ListAlertRulesRequest(), timeout=10)).rules
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await svc.stub.DeleteAlertRule(pb.DeleteAlertRuleRequest(name="high_memory_usage"),
                                           timeout=10)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


BAD = [
    ({"name": ""}, "name"),
    ({"name": "has space"}, "name must be"),
    ({"type": "anomaly"}, "type must be 'threshold'"),
    ({"metric": ""}, "metric is required"),
    ({"metric": "memory.nope"}, "known metrics: cpu.usage_percent"),
    ({"condition": "above"}, "condition must be one of greater_than"),
    ({"condition": ""}, "condition must be one of"),
    ({"threshold": float("nan")}, "threshold must be a finite number"),
    ({"threshold": float("inf")}, "threshold must be a finite number"),
    ({"duration_seconds": -1}, "duration_seconds must be between 0"),
    ({"repeat_interval_seconds": -5}, "repeat_interval_seconds must be between 0"),
    ({"keep_firing_seconds": 99999999}, "keep_firing_seconds must be between 0"),
    ({"severity": "urgent"}, "severity must be one of info, warning, error, critical"),
    ({"on_no_data": "maybe"}, "on_no_data must be one of ok, alert, keep"),
    ({"recovery_threshold": 95}, "recovery_threshold must be at most the threshold"),
    ({"condition": "less_than", "recovery_threshold": 80}, "must be at least the threshold"),
    ({"condition": "equal", "recovery_threshold": 80}, "only applies to greater_than"),
    ({"labels": {"bad-key": "x"}}, "label name 'bad-key'"),
    ({"labels": {"alertname": "x"}}, "label 'alertname' is set by botmon"),
    ({"description": "{value} and {nope}"}, "unknown placeholder(s) {nope}"),
    ({"description": "{unclosed"}, "description is not a valid template"),
    ({"notify": {"email": ["not-an-address"]}}, "not an e-mail address botmon can send to"),
    ({"notify": {"webhook": "ftp://example.com"}}, "notify.webhook must be an http"),
    ({"notify": {"slack": "hooks.slack.com/x"}}, "notify.slack must be an http"),
    ({"notify": {"teams": "http://"}}, "notify.teams must be an http"),
    ({"notify": {"pagerduty": "bad key!"}}, "routing key"),
    ({"notify": {"sms": ["5551234"]}}, "must be an E.164 number"),
    ({"secret": "abc"}, "secret signs webhook payloads"),
    ({"name": "botmon_metrics_unreachable"}, "is reserved"),
]


@pytest.mark.parametrize(("change", "message"), BAD, ids=[m for _, m in BAD])
async def test_bad_rule_is_invalid_argument_saying_what_to_fix(alert_settings, change, message):
    async with serve(alert_settings()) as svc:
        fields = {**RULE, **change}
        notify = fields.pop("notify", None)
        rule = alert_pb2.AlertRule(**fields)
        if notify:
            rule.notify.CopyFrom(alert_pb2.Notify(**notify))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await svc.stub.ConfigureAlertRule(pb.ConfigureAlertRuleRequest(rule=rule), timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in err.value.details()


#: Addresses the notifier could not put into a message or an SMTP command, and why.
UNSENDABLE = [
    "oncall@[example.com",  # the standard library's address parser raises AttributeError
    "oncall\x7f@example.com",  # aiosmtplib refuses the control character in RCPT
    "=?utf-8?q?ops?=@example.com",  # the To header would decode it to ops@example.com
    "opération@example.com",  # needs SMTPUTF8, which the relay may not offer
    "oncall@bücher.example",  # the same, unless written in its xn-- form
    "on call@example.com",
    "oncall.@example.com",
    "on..call@example.com",
    "\"on call\"@example.com",  # a quoted local part
    "Ops <oncall@example.com>",
    "oncall@example.com, ops@example.com",
    "oncall@-example.com",
    "oncall@example_mail.com",
    "oncall@example.com.",
    "oncall@[192.0.2.1]",
    "x" * 65 + "@example.com",
    "x@" + "a" * 64 + ".example.com",
    "x@" + ".".join(["a" * 60] * 5) + ".com",
]


def _violations(error: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    raw = dict(error.trailing_metadata())["grpc-status-details-bin"]
    bad = error_details_pb2.BadRequest()
    assert status_pb2.Status.FromString(raw).details[0].Unpack(bad)
    return [(v.field, v.description) for v in bad.field_violations]


@pytest.mark.parametrize("address", UNSENDABLE)
async def test_an_address_that_cannot_be_sent_to_is_refused_and_changes_nothing(alert_settings,
                                                                                address):
    async with serve(alert_settings()) as svc:
        good = await svc.configure(**RULE, notify={"email": ["oncall@example.com"]})
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await svc.configure(**RULE, notify={"email": ["team@example.net", address]})
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        [(field, description)] = _violations(err.value)
        # Named by its beginning: a long address is cut short.
        assert field == "notify.email" and description.startswith(f"notify.email {address[:60]!r}"[:-1])
        assert "team@" not in description and "write it as name@example.com" in description
        assert description in err.value.details()
        [rule] = (await svc.stub.ListAlertRules(pb.ListAlertRulesRequest(), timeout=10)).rules
        assert rule == good.rule


async def test_an_address_without_a_dot_in_its_domain_is_refused(alert_settings):
    async with serve(alert_settings()) as svc:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await svc.configure(**RULE, notify={"email": ["root@localhost", "ops@mailhost"]})
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert _violations(err.value) == [
            ("notify.email", "notify.email 'root@localhost', 'ops@mailhost': the domain needs "
                             "a dot, such as example.com")]
        assert not (await svc.stub.ListAlertRules(pb.ListAlertRulesRequest(), timeout=10)).rules


async def test_missing_rule_and_several_problems_at_once(alert_settings):
    async with serve(alert_settings()) as svc:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await svc.stub.ConfigureAlertRule(pb.ConfigureAlertRuleRequest(), timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "rule is required" in err.value.details()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await svc.configure(name="x", metric="cpu.usage_percent", condition="over",
                                severity="loud")
        details = err.value.details()
        assert "condition must be" in details and "severity must be" in details


async def test_channels_that_need_server_settings_fail_precondition(alert_settings):
    async with serve(alert_settings(smtp_host=None, sms_gateway_url=None)) as svc:
        for notify, variable in (({"email": ["a@example.com"]}, "BOTMON_SMTP_HOST"),
                                 ({"sms": ["+15551234567"]}, "BOTMON_SMS_GATEWAY_URL")):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await svc.configure(**RULE, notify=notify)
            assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert variable in err.value.details()


async def test_metrics_unreachable_at_configure_time_is_unavailable(alert_settings, metrics):
    async with serve(alert_settings()) as svc:
        metrics.down = True
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await svc.configure(**RULE)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "metrics service" in err.value.details()
        assert not (await svc.stub.ListAlertRules(pb.ListAlertRulesRequest(), timeout=10)).rules


async def test_default_rules_are_stored_once_and_stay_deleted(alert_settings):
    settings = alert_settings()
    with_defaults = fast(default_rules=True)
    async with serve(settings, with_defaults) as svc:
        rules = {r.name: r for r in
                 (await svc.stub.ListAlertRules(pb.ListAlertRulesRequest(), timeout=10)).rules}
        assert set(rules) == {"high_cpu", "high_memory_usage", "disk_space", "high_error_rate",
                              "high_p99_latency"}
        cpu = rules["high_cpu"]
        assert (cpu.metric, cpu.condition, cpu.threshold, cpu.duration_seconds) == \
            ("cpu.usage_percent", "greater_than", 80, 300)
        assert rules["disk_space"].condition == "less_than" and rules["disk_space"].threshold == 10
        # Editable and deletable like any rule.
        await svc.configure(**{**RULE, "name": "high_cpu", "metric": "cpu.usage_percent",
                               "threshold": 95})
        await svc.stub.DeleteAlertRule(pb.DeleteAlertRuleRequest(name="disk_space"), timeout=10)
    async with serve(settings, with_defaults) as svc:
        rules = {r.name: r for r in
                 (await svc.stub.ListAlertRules(pb.ListAlertRulesRequest(), timeout=10)).rules}
        assert "disk_space" not in rules
        assert rules["high_cpu"].threshold == 95
