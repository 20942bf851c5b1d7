"""Validation of rules as given by a client, with messages that say what to fix."""

from __future__ import annotations

import dataclasses
import math
import re
import string
from collections.abc import Collection
from urllib.parse import urlsplit

from botmon.runtime.errors import FailedPrecondition, InvalidArgument
from botmon.runtime.sealing import PREFIX as SEALED_PREFIX
from botmon.runtime.sealing import Sealer
from services.alerts.destinations import DestinationPolicy
from services.alerts.lifecycle import UNREACHABLE_RULE
from services.alerts.notifiers.email import ADDRESS_FORM, mailbox
from services.alerts.rule import CONDITIONS, DEFAULT_REPEAT_SECONDS, NO_DATA, SEVERITIES, Rule

__all__ = ["check_metric", "check_rule", "check_rule_name"]

NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")
LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
PHONE = re.compile(r"^\+[1-9][0-9]{6,14}$")
ROUTING_KEY = re.compile(r"^[A-Za-z0-9]{1,64}$")
PLACEHOLDERS = ("value", "threshold", "metric", "duration")
MAX_SECONDS = 30 * 86400


def check_rule_name(name: str) -> None:
    """Raise InvalidArgument unless ``name`` is a valid rule name."""
    if not NAME.match(name):
        raise InvalidArgument(f"name must be 1 to 128 letters, digits, '_', '-' or '.', got {name!r}",
                              field="name")


def check_metric(metric: str, known: Collection[str]) -> None:
    """Raise InvalidArgument listing the known metrics unless ``metric`` is one of them."""
    if metric not in known:
        problem = f"unknown metric {metric!r}; known metrics: " + ", ".join(sorted(known))
        raise InvalidArgument(f"invalid rule: {problem}", violations=(("metric", problem),))


def check_rule(rule: Rule, *, has_recovery: bool, smtp_configured: bool,
               sms_configured: bool, destinations: DestinationPolicy) -> Rule:
    """Return ``rule`` with defaults filled in, or raise with every problem found."""
    # (field, what to fix): the message lists them all, the details name each field.
    problems: list[tuple[str, str]] = []
    if not NAME.match(rule.name):
        problems.append(("name", "name must be 1 to 128 letters, digits, '_', '-' or '.'"
                         + (f", got {rule.name!r}" if rule.name else " (it is required)")))
    elif rule.name == UNREACHABLE_RULE:
        problems.append(("name", f"name {UNREACHABLE_RULE!r} is reserved for botmon's own alert"))
    if rule.type not in ("", "threshold"):
        problems.append(("type", f"type must be 'threshold', got {rule.type!r}"))
    if not rule.metric:
        problems.append(("metric", "metric is required, e.g. 'memory.usage_percent'"))
    elif len(rule.metric) > 256:
        problems.append(("metric", "metric must be at most 256 characters"))
    if rule.condition not in CONDITIONS:
        problems.append(("condition", f"condition must be one of {', '.join(CONDITIONS)}"
                         + (f", got {rule.condition!r}" if rule.condition
                            else " (it is required)")))
    if not math.isfinite(rule.threshold):
        problems.append(("threshold", "threshold must be a finite number"))
    for field in ("duration_seconds", "repeat_interval_seconds", "keep_firing_seconds"):
        value = getattr(rule, field)
        if not 0 <= value <= MAX_SECONDS:
            problems.append((field, f"{field} must be between 0 and {MAX_SECONDS}, got {value}"))
    if rule.severity not in ("", *SEVERITIES):
        problems.append(("severity", f"severity must be one of {', '.join(SEVERITIES)}, "
                                     f"got {rule.severity!r}"))
    if rule.on_no_data not in ("", *NO_DATA):
        problems.append(("on_no_data", f"on_no_data must be one of {', '.join(NO_DATA)}, "
                                       f"got {rule.on_no_data!r}"))
    if has_recovery:
        problems.extend(("recovery_threshold", p) for p in _recovery_problems(rule))
    problems.extend(("labels", p) for p in _label_problems(rule.labels))
    problems.extend(("description", p) for p in _description_problems(rule.description))
    if len(rule.secret) > 256:
        problems.append(("secret", "secret must be at most 256 characters"))
    elif Sealer.sealed(rule.secret):
        problems.append(("secret", f"secret must not start with {SEALED_PREFIX!r}, which marks "
                                   "sealed values"))
    problems.extend(_notify_problems(rule, destinations))
    if problems:
        raise InvalidArgument("invalid rule: " + "; ".join(text for _, text in problems),
                              violations=tuple(problems))
    if rule.notify.email and not smtp_configured:
        raise FailedPrecondition("notify.email needs BOTMON_SMTP_HOST set on the alerts service")
    if rule.notify.sms and not sms_configured:
        raise FailedPrecondition("notify.sms needs BOTMON_SMS_GATEWAY_URL set on the alerts service")
    return dataclasses.replace(
        rule, type="threshold", severity=rule.severity or "warning",
        on_no_data=rule.on_no_data or "ok",
        repeat_interval_seconds=rule.repeat_interval_seconds or DEFAULT_REPEAT_SECONDS,
        recovery_threshold=rule.recovery_threshold if has_recovery else None)


def _recovery_problems(rule: Rule) -> list[str]:
    value = rule.recovery_threshold
    if value is None or not math.isfinite(value):
        return ["recovery_threshold must be a finite number"]
    if rule.condition in ("equal", "not_equal"):
        return ["recovery_threshold only applies to greater_than/less_than conditions"]
    if rule.condition.startswith("greater") and value > rule.threshold:
        return [f"recovery_threshold must be at most the threshold ({rule.threshold:g}) "
                f"for {rule.condition}, got {value:g}"]
    if rule.condition.startswith("less") and value < rule.threshold:
        return [f"recovery_threshold must be at least the threshold ({rule.threshold:g}) "
                f"for {rule.condition}, got {value:g}"]
    return []


def _label_problems(labels: dict[str, str]) -> list[str]:
    problems = []
    if len(labels) > 32:
        problems.append(f"at most 32 labels, got {len(labels)}")
    for key, value in labels.items():
        if not LABEL.match(key):
            problems.append(f"label name {key!r} must match [A-Za-z_][A-Za-z0-9_]*")
        elif key in ("alertname", "severity"):
            problems.append(f"label {key!r} is set by botmon; remove it")
        if len(value) > 1024:
            problems.append(f"label {key!r} value must be at most 1024 characters")
    return problems


def _description_problems(description: str) -> list[str]:
    if len(description) > 1024:
        return ["description must be at most 1024 characters"]
    try:
        fields = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(description)
                  if f is not None]
    except ValueError as exc:
        return [f"description is not a valid template ({exc}); write literal braces as {{{{ }}}}"]
    problems = []
    # A format spec such as {value:>100000000} would pad to any width: bare names only.
    dressed = sorted({"{" + f + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}"
                      for f, spec, conv in fields if spec or conv})
    if dressed:
        problems.append(f"description placeholders take no format spec or conversion, got "
                        f"{', '.join(dressed)}; write a bare name such as {{value}}")
    unknown = sorted({f for f, _, _ in fields if f not in PLACEHOLDERS})
    if unknown:
        problems.append(f"description uses unknown placeholder(s) "
                        f"{', '.join('{' + n + '}' for n in unknown)}"
                        f"; use {', '.join('{' + p + '}' for p in PLACEHOLDERS)}")
    return problems


def _notify_problems(rule: Rule, destinations: DestinationPolicy) -> list[tuple[str, str]]:
    notify = rule.notify
    problems = []
    # The notifier's own parser, so that what is accepted here is what it can send.
    unsendable, undotted = [], []
    for address in notify.email:
        try:
            if "." not in mailbox(address).domain:
                undotted.append(address)
        except ValueError:
            unsendable.append(address)
    if unsendable:
        problems.append(("notify.email", f"notify.email {_quoted(unsendable)}: not an e-mail "
                                         f"address botmon can send to; {ADDRESS_FORM}"))
    if undotted:
        problems.append(("notify.email", f"notify.email {_quoted(undotted)}: the domain needs "
                                         "a dot, such as example.com"))
    for channel in ("webhook", "slack", "teams"):
        value = getattr(notify, channel)
        if value and not _http_url(value):
            problems.append((f"notify.{channel}",
                             f"notify.{channel} must be an http:// or https:// URL, got {value!r}"))
        elif value and (problem := destinations.problem(value)):
            problems.append((f"notify.{channel}", f"notify.{channel}: {problem}"))
    if notify.pagerduty and not ROUTING_KEY.match(notify.pagerduty):
        problems.append(("notify.pagerduty", "notify.pagerduty must be a PagerDuty Events v2 "
                                             "routing key (1 to 64 letters and digits)"))
    for number in notify.sms:
        if not PHONE.match(number):
            problems.append(("notify.sms",
                             f"notify.sms {number!r} must be an E.164 number like +15551234567"))
    if len(notify.email) > 50 or len(notify.sms) > 50:
        problems.append(("notify", "at most 50 e-mail addresses and 50 SMS numbers per rule"))
    if rule.secret and not notify.webhook:
        problems.append(("secret",
                         "secret signs webhook payloads; set notify.webhook or remove the secret"))
    return problems


def _quoted(values: list[str]) -> str:
    """``values`` for a message, each cut to 64 characters and at most five: an error's text
    travels in gRPC trailers, which hold 16 KiB."""
    shown = ", ".join(repr(v if len(v) <= 64 else v[:63] + "…") for v in values[:5])
    return shown + (f" and {len(values) - 5} more" if len(values) > 5 else "")


def _http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and len(value) <= 2048
