"""AlertsService: proto in, proto out; the domain lives in the store, engine and notifiers."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import grpc

from botmon.alerts.v1 import alerts_service_pb2, alerts_service_pb2_grpc
from botmon.runtime.context import caller
from botmon.runtime.errors import FailedPrecondition, InvalidArgument
from services.alerts.alert import Alert
from services.alerts.audit import Actor
from services.alerts.dispatcher import delivery_record
from services.alerts.masking import restore_masked
from services.alerts.messages import (
    alert_message,
    delivery_message,
    history_message,
    matchers_from_message,
    rule_from_message,
    rule_message,
    seconds,
    silence_message,
)
from services.alerts.metrics_source import MetricsSource
from services.alerts.notifiers import Notifiers
from services.alerts.rule import SEVERITIES
from services.alerts.silence import Silence, check_matchers
from services.alerts.store import AlertsStore, history_row
from services.alerts.validation import check_metric, check_rule, check_rule_name

__all__ = ["AlertsServicer"]

HTTP_CODE_HEADER = "x-http-code"
STATES = ("pending", "firing")
SILENCE_STATES = ("pending", "active", "expired")


def _subject(context: grpc.aio.ServicerContext) -> str:
    """The authenticated caller's subject (the interceptor's, never the metadata's)."""
    principal = caller.get()
    return principal.subject if principal is not None else ""


def _noted(text: str, named: str, subject: str) -> str:
    """``text`` with a note of the person the body named when that is not the caller."""
    if not subject or not named or named == subject:
        return text
    note = f"(on behalf of {named})"
    return f"{text} {note}" if text else note


def _one_of(field: str, value: str, allowed: tuple[str, ...]) -> None:
    if value and value not in allowed:
        raise InvalidArgument(f"{field} must be one of {', '.join(allowed)}, got {value!r}")


class AlertsServicer(alerts_service_pb2_grpc.AlertsServiceServicer):
    """Rules, alerts, silences and history over gRPC; any replica answers."""

    def __init__(self, store: AlertsStore, source: MetricsSource, notifiers: Notifiers, *,
                 smtp_configured: bool, sms_configured: bool, wake: Callable[[], None],
                 audited: Callable[[], None], clock: Callable[[], float] = time.time):
        self.store = store
        self.source = source
        self.notifiers = notifiers
        self.smtp_configured = smtp_configured
        self.sms_configured = sms_configured
        self.wake = wake
        self.audited = audited
        self.clock = clock

    async def ListAlerts(self, request, context):
        _one_of("severity", request.severity, SEVERITIES)
        _one_of("state", request.state, STATES)
        now = self.clock()
        alerts = await self.store.list_alerts()
        silences = await self.store.active_silences(now)
        firing = [a for a in alerts if a.state == "firing"]
        # GET /alerts promises firing alerts (CONTRACT.md §6); pending ones are asked for by name.
        state = request.state or "firing"
        shown = [a for a in alerts if a.state == state
                 and (not request.severity or a.rule.severity == request.severity)]
        return alerts_service_pb2.ListAlertsResponse(
            alerts=[alert_message(a, silenced=any(s.mutes(a.labels, now) for s in silences))
                    for a in shown],
            active_count=len(firing),
            critical_count=sum(a.rule.severity == "critical" for a in firing),
            warning_count=sum(a.rule.severity == "warning" for a in firing),
            pending_count=len(alerts) - len(firing))

    async def ConfigureAlertRule(self, request, context):
        if not request.HasField("rule"):
            raise InvalidArgument("rule is required: send the rule's fields as the body")
        given = restore_masked(rule_from_message(request.rule),
                               await self.store.find_rule(request.rule.name))
        rule = check_rule(given,
                          has_recovery=request.rule.HasField("recovery_threshold"),
                          smtp_configured=self.smtp_configured, sms_configured=self.sms_configured,
                          destinations=self.notifiers.destinations)
        # Only a metric the metrics service reports can ever be evaluated, so ask it now.
        check_metric(rule.metric, await self.source.values())
        stored, created = await self.store.put_rule(rule, self.clock(), Actor.of(context))
        self.audited()
        await context.send_initial_metadata(((HTTP_CODE_HEADER, "201" if created else "200"),))
        return alerts_service_pb2.ConfigureAlertRuleResponse(rule=rule_message(stored),
                                                             created=created)

    async def ListAlertRules(self, request, context):
        rules = await self.store.list_rules()
        return alerts_service_pb2.ListAlertRulesResponse(rules=[rule_message(r) for r in rules])

    async def DeleteAlertRule(self, request, context):
        check_rule_name(request.name)
        await self.store.delete_rule(request.name, self.clock(), Actor.of(context))
        self.audited()
        return alerts_service_pb2.DeleteAlertRuleResponse(name=request.name)

    async def TestAlertRule(self, request, context):
        check_rule_name(request.name)
        rule = await self.store.get_rule(request.name)
        targets = rule.targets
        if not targets:
            raise FailedPrecondition(f"rule {rule.name!r} has no notify channels to test")
        now = self.clock()
        alert = Alert.raise_for(rule, now, None)
        alert.state, alert.alert_id = "firing", "alt_test_" + uuid.uuid4().hex[:8]
        alert.message = f"Test notification of rule {rule.name}: {rule.message(None)}"
        payload = {**alert.snapshot(), "kind": "test"}
        outcomes = await asyncio.gather(*(self.notifiers.send(channel, target, secret, payload)
                                          for channel, target, secret in targets))
        records = [delivery_record(channel, target, "test", 1, outcome, self.clock())
                   for (channel, target, _), outcome in zip(targets, outcomes, strict=True)]
        await self.store.add_history([
            history_row(r["time"], alert.alert_id, rule.name, rule.severity, "delivery",
                        detail="test", delivery=r) for r in records])
        return alerts_service_pb2.TestAlertRuleResponse(
            deliveries=[delivery_message(r) for r in records])

    async def AcknowledgeAlert(self, request, context):
        # The authenticated subject is who acted; a name in the body is only a note. A call
        # with no subject (gRPC without the gateway) names itself.
        subject = _subject(context)
        by = subject or request.acknowledged_by
        if not by:
            raise InvalidArgument("acknowledged_by is required when the call carries no "
                                  "authenticated subject")
        if len(request.acknowledged_by) > 256:
            raise InvalidArgument("acknowledged_by must be at most 256 characters")
        if len(request.notes) > 4096:
            raise InvalidArgument(f"notes must be at most 4096 characters, got {len(request.notes)}")
        notes = _noted(request.notes, request.acknowledged_by, subject)
        now = self.clock()
        alert = await self.store.acknowledge(request.alert_id, by, notes, now,
                                             Actor.of(context))
        self.wake()
        self.audited()
        silences = await self.store.active_silences(now)
        return alerts_service_pb2.AcknowledgeAlertResponse(alert=alert_message(
            alert, silenced=any(s.mutes(alert.labels, now) for s in silences)))

    async def ListAlertHistory(self, request, context):
        _one_of("severity", request.severity, SEVERITIES)
        page_size = request.page_size or 100
        if not 1 <= page_size <= 1000:
            raise InvalidArgument(f"page_size must be between 1 and 1000, got {request.page_size}")
        start = seconds(request.start_time) if request.HasField("start_time") else None
        end = seconds(request.end_time) if request.HasField("end_time") else None
        if start is not None and end is not None and end <= start:
            raise InvalidArgument("end_time must be after start_time")
        rows, token = await self.store.history(
            rule=request.rule, severity=request.severity, alert_id=request.alert_id, start=start,
            end=end, page_size=page_size, page_token=request.page_token)
        return alerts_service_pb2.ListAlertHistoryResponse(
            history=[history_message(r) for r in rows], next_page_token=token)

    async def CreateSilence(self, request, context):
        if not request.HasField("silence"):
            raise InvalidArgument("silence is required: send matchers, ends_at and a comment")
        given = request.silence
        matchers = matchers_from_message(given)
        check_matchers(matchers)
        now = self.clock()
        starts = seconds(given.starts_at) if given.HasField("starts_at") else now
        if not given.HasField("ends_at"):
            raise InvalidArgument("ends_at is required: when the silence ends (RFC 3339)")
        ends = seconds(given.ends_at)
        if ends <= starts:
            raise InvalidArgument("ends_at must be after starts_at")
        if ends <= now:
            raise InvalidArgument("ends_at must be in the future")
        if len(given.comment) > 1024 or len(given.created_by) > 256:
            raise InvalidArgument("comment must be at most 1024 and created_by at most 256 "
                                  "characters")
        subject = _subject(context)
        silence = Silence(silence_id="sil_" + uuid.uuid4().hex[:16], matchers=tuple(matchers),
                          starts_at=starts, ends_at=ends,
                          created_by=subject or given.created_by,
                          comment=_noted(given.comment, given.created_by, subject))
        await self.store.create_silence(silence, now, Actor.of(context))
        self.audited()
        return alerts_service_pb2.CreateSilenceResponse(silence=silence_message(silence, now))

    async def ListSilences(self, request, context):
        _one_of("state", request.state, SILENCE_STATES)
        now = self.clock()
        silences = [s for s in await self.store.list_silences()
                    if not request.state or s.state(now) == request.state]
        return alerts_service_pb2.ListSilencesResponse(
            silences=[silence_message(s, now) for s in silences])

    async def ExpireSilence(self, request, context):
        now = self.clock()
        silence = await self.store.expire_silence(request.silence_id, now, Actor.of(context))
        self.audited()
        return alerts_service_pb2.ExpireSilenceResponse(silence=silence_message(silence, now))
