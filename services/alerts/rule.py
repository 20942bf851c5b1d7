"""Threshold rules: the domain type, its conditions and its JSON form in the store."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import operator
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CONDITIONS",
    "DEFAULT_REPEAT_SECONDS",
    "NO_DATA",
    "SEVERITIES",
    "Notify",
    "Rule",
]

#: Condition name -> comparison of (value, threshold).
CONDITIONS: dict[str, Callable[[float, float], bool]] = {
    "greater_than": operator.gt,
    "greater_than_or_equal": operator.ge,
    "less_than": operator.lt,
    "less_than_or_equal": operator.le,
    "equal": operator.eq,
    "not_equal": operator.ne,
}

_SYMBOLS = {"greater_than": ">", "greater_than_or_equal": ">=", "less_than": "<",
            "less_than_or_equal": "<=", "equal": "==", "not_equal": "!="}

SEVERITIES = ("info", "warning", "error", "critical")
NO_DATA = ("ok", "alert", "keep")
DEFAULT_REPEAT_SECONDS = 4 * 3600


@dataclass(frozen=True)
class Notify:
    """Where a rule's notifications go."""

    email: tuple[str, ...] = ()
    webhook: str = ""
    slack: str = ""
    teams: str = ""
    pagerduty: str = ""
    sms: tuple[str, ...] = ()
    #: More (channel, target, secret) triples; only botmon's own alerts have them.
    extra: tuple[tuple[str, Any, str], ...] = ()


@dataclass(frozen=True)
class Rule:
    """A threshold rule over one metric value."""

    name: str
    metric: str
    condition: str
    threshold: float
    duration_seconds: int = 0
    severity: str = "warning"
    notify: Notify = field(default_factory=Notify)
    secret: str = ""
    repeat_interval_seconds: int = DEFAULT_REPEAT_SECONDS
    keep_firing_seconds: int = 0
    recovery_threshold: float | None = None
    on_no_data: str = "ok"
    labels: dict[str, str] = field(default_factory=dict)
    description: str = ""
    type: str = "threshold"
    create_time: float = 0.0
    update_time: float = 0.0

    @functools.cached_property
    def targets(self) -> tuple[tuple[str, Any, str], ...]:
        """(channel, target, secret): one e-mail to every address, one SMS per number."""
        notify = self.notify
        out: list[tuple[str, Any, str]] = []
        if notify.email:
            out.append(("email", list(notify.email), ""))
        for channel in ("webhook", "slack", "teams", "pagerduty"):
            if getattr(notify, channel):
                out.append((channel, getattr(notify, channel),
                            self.secret if channel == "webhook" else ""))
        out.extend(("sms", number, "") for number in notify.sms)
        out.extend((channel, target, secret) for channel, target, secret in notify.extra)
        return tuple(out)

    def holds(self, value: float) -> bool:
        """True when ``value`` meets the condition."""
        return CONDITIONS[self.condition](value, self.threshold)

    def still_holds(self, value: float) -> bool:
        """True while a firing alert should stay firing: hysteresis uses the recovery threshold."""
        if self.recovery_threshold is None:
            return self.holds(value)
        return CONDITIONS[self.condition](value, self.recovery_threshold)

    # Cached because a cycle may raise thousands of alerts; shared, so never mutate them.
    @functools.cached_property
    def alert_labels(self) -> dict[str, str]:
        """The rule's labels plus ``alertname`` and ``severity``, as Alertmanager has them."""
        return {**self.labels, "alertname": self.name, "severity": self.severity}

    @functools.cached_property
    def labels_json(self) -> str:
        """:attr:`alert_labels` as canonical JSON."""
        return json.dumps(self.alert_labels, sort_keys=True, separators=(",", ":"))

    @functools.cached_property
    def fingerprint(self) -> str:
        """Hash of the rule name and its labels: the identity of its alerts' series."""
        return hashlib.sha256(self.labels_json.encode()).hexdigest()[:16]

    def message(self, value: float | None) -> str:
        """The alert message: the description template filled in, or a generated sentence."""
        shown = "no data" if value is None else _number(value)
        duration = _duration(self.duration_seconds)
        if self.description:
            return _fill(self.description, {"value": shown, "threshold": _number(self.threshold),
                                            "metric": self.metric, "duration": duration})
        text = f"{self.metric} is {shown} ({_SYMBOLS[self.condition]} {_number(self.threshold)})"
        return f"{text} for {duration}" if self.duration_seconds else text

    def to_json(self) -> str:
        """The rule (without its secret and times) as stored."""
        return self._json

    @functools.cached_property
    def _json(self) -> str:
        # Cached: every alert row carries its rule, and a cycle may write thousands of them.
        spec = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in ("secret", "create_time", "update_time", "notify")}
        spec["notify"] = {f.name: getattr(self.notify, f.name)
                          for f in dataclasses.fields(self.notify)}
        return json.dumps(spec, sort_keys=True)

    @classmethod
    def from_json(cls, spec: str, *, secret: str = "", create_time: float = 0.0,
                  update_time: float = 0.0) -> Rule:
        data = json.loads(spec)
        notify = data.pop("notify", {}) or {}
        notify = Notify(email=tuple(notify.get("email", ())), sms=tuple(notify.get("sms", ())),
                        extra=tuple(tuple(t) for t in notify.get("extra", ())),
                        **{k: notify.get(k, "") for k in ("webhook", "slack", "teams", "pagerduty")})
        rule = cls(notify=notify, secret=secret, create_time=create_time,
                   update_time=update_time, **data)
        # The stored text is what to_json() gives (canonical), so it seeds the cache.
        rule.__dict__["_json"] = spec
        return rule


def _fill(template: str, values: dict[str, str]) -> str:
    """``template`` with each bare ``{name}`` replaced; a format spec or conversion is ignored
    (validation refuses them), so no stored template can pad a value to any width."""
    out = []
    for literal, name, _, _ in string.Formatter().parse(template):
        out.append(literal)
        if name is not None:
            out.append(values.get(name, "{" + name + "}"))
    return "".join(out)


def _number(value: float) -> str:
    return f"{value:g}"


def _duration(seconds: int) -> str:
    if seconds and seconds % 3600 == 0:
        return f"{seconds // 3600} hour{'s' if seconds != 3600 else ''}"
    if seconds and seconds % 60 == 0:
        return f"{seconds // 60} minute{'s' if seconds != 60 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"
