"""The alert lifecycle, evaluated in memory: inactive -> pending -> firing -> resolved.

One :meth:`Evaluator.evaluate` call is one evaluation cycle over every rule;
it mutates the in-memory alerts and returns only what changed, which the
store then writes in one transaction (alerts, history and outbox together).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from services.alerts.alert import Alert
from services.alerts.rule import Notify, Rule
from services.alerts.silence import Silence

__all__ = ["UNREACHABLE_RULE", "Changes", "Evaluator", "Notice", "Transition"]

UNREACHABLE_RULE = "botmon_metrics_unreachable"


@dataclass
class Transition:
    """An alert entering a state ("" for from_state when it is new)."""

    alert_id: str
    rule: str
    severity: str
    value: float | None
    from_state: str
    to_state: str
    time: float
    detail: str = ""


@dataclass
class Notice:
    """A notification to enqueue for every channel of the alert's rule."""

    alert_id: str
    rule: Rule
    kind: str
    due_at: float
    payload: dict

    @classmethod
    def of(cls, alert: Alert, kind: str, due_at: float) -> Notice:
        """The alert as it is now; later changes to it do not alter the notice."""
        return cls(alert.alert_id, alert.rule, kind, due_at, {**alert.snapshot(), "kind": kind})


@dataclass
class Changes:
    """What one cycle (or one reload) changed; empty in a quiet steady state."""

    alerts: dict[str, Alert] = field(default_factory=dict)
    transitions: list[Transition] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.alerts or self.transitions or self.notices)

    def touch(self, alert: Alert) -> None:
        self.alerts[alert.alert_id] = alert

    def move(self, alert: Alert, to_state: str, now: float, detail: str = "") -> None:
        from_state, alert.state = alert.state, to_state
        self.touch(alert)
        self.transitions.append(Transition(alert.alert_id, alert.rule.name, alert.rule.severity,
                                           alert.current_value, from_state, to_state, now,
                                           detail))


class Evaluator:
    """Rules, their active alerts and the silences, held in memory by the leader."""

    def __init__(self, *, group_wait: float = 0.0, unreachable_grace: float = 60.0):
        self.group_wait = group_wait
        self.unreachable_grace = unreachable_grace
        self.rules: dict[str, Rule] = {}
        self.active: dict[str, Alert] = {}
        self.silences: list[Silence] = []
        self.unreachable_since: float | None = None

    def load(self, rules: Iterable[Rule], alerts: Iterable[Alert], silences: Iterable[Silence],
             now: float) -> Changes:
        """Replace the state with the store's; alerts whose rule was deleted or replaced end."""
        self.rules = {rule.name: rule for rule in rules}
        self.active = {alert.rule.name: alert for alert in alerts}
        self.silences = list(silences)
        changes = Changes()
        for name, alert in list(self.active.items()):
            if name == UNREACHABLE_RULE:
                continue
            current = self.rules.get(name)
            if current is None:
                self._end(alert, now, changes, "rule deleted")
            elif current.update_time != alert.rule.update_time:
                self._end(alert, now, changes, "rule replaced")
        return changes

    def unnotified(self, alert_id: str) -> None:
        """The alert's first notification was muted before it went out: announce it later."""
        for alert in self.active.values():
            if alert.alert_id == alert_id and alert.state == "firing":
                alert.notified = False

    def evaluate(self, values: dict[str, float] | None, now: float) -> Changes:
        """Run one cycle; ``values`` is None when the metrics service could not be read."""
        changes = Changes()
        if values is None:
            # Nothing is known, so nothing may resolve: states are kept as they are.
            self._unreachable(now, changes)
            return changes
        self.unreachable_since = None
        synthetic = self.active.get(UNREACHABLE_RULE)
        if synthetic is not None:
            self._end(synthetic, now, changes, "metrics service reachable again")
        for rule in self.rules.values():
            value = values.get(rule.metric)
            if value is not None and value != value:  # NaN carries no information: no data
                value = None
            self._step(rule, value, now, changes)
        return changes

    def _step(self, rule: Rule, value: float | None, now: float, changes: Changes) -> None:
        alert = self.active.get(rule.name)
        if value is None and rule.on_no_data == "keep":
            return
        if value is None:
            holding = rule.on_no_data == "alert"
        elif alert is not None and alert.state == "firing":
            holding = rule.still_holds(value)
        else:
            holding = rule.holds(value)
        if alert is None:
            if holding:
                alert = self.active[rule.name] = Alert.raise_for(rule, now, value)
                if rule.duration_seconds == 0:
                    self._fire(alert, now, changes)  # straight to firing, as Prometheus's for: 0
                else:
                    changes.move(alert, "pending", now)
            return
        self._observe(alert, value, changes)
        if alert.state == "pending":
            if not holding:
                self._end(alert, now, changes, "condition no longer holds")
            elif now - alert.triggered_at >= rule.duration_seconds:
                self._fire(alert, now, changes)
            return
        if holding:
            if alert.cleared_at is not None:
                alert.cleared_at = None
                changes.touch(alert)
        else:
            if alert.cleared_at is None:
                alert.cleared_at = now
                changes.touch(alert)
            if now - alert.cleared_at >= rule.keep_firing_seconds:
                self._end(alert, now, changes, "condition no longer holds")
                return
        self._maybe_notify(alert, now, changes)

    def _observe(self, alert: Alert, value: float | None, changes: Changes) -> None:
        if value != alert.current_value:
            alert.current_value = value
            alert.message = alert.rule.message(value)
            changes.touch(alert)

    def _fire(self, alert: Alert, now: float, changes: Changes) -> None:
        alert.fired_at = now
        alert.silenced = self._silenced(alert, now)
        changes.move(alert, "firing", now, "silenced" if alert.silenced else "")
        if not alert.silenced:
            self._notify(alert, "firing", now + self.group_wait, changes)

    def _maybe_notify(self, alert: Alert, now: float, changes: Changes) -> None:
        silenced = self._silenced(alert, now)
        if silenced != alert.silenced:
            alert.silenced = silenced
            changes.touch(alert)
        if silenced:
            return
        if not alert.notified:
            # First notification of an alert that fired while silenced.
            self._notify(alert, "firing", now, changes)
        elif (not alert.acknowledged and alert.last_notified_at is not None
              and now - alert.last_notified_at >= alert.rule.repeat_interval_seconds):
            self._notify(alert, "repeat", now, changes)

    def _notify(self, alert: Alert, kind: str, due_at: float, changes: Changes) -> None:
        alert.notified = True
        alert.last_notified_at = due_at
        changes.touch(alert)
        if alert.rule.targets:
            changes.notices.append(Notice.of(alert, kind, due_at))

    def _end(self, alert: Alert, now: float, changes: Changes, detail: str) -> None:
        """Resolve a firing alert (with a resolve notice if anyone was told) or drop a pending one."""
        del self.active[alert.rule.name]
        alert.resolved_at = now
        if alert.state == "pending":
            changes.move(alert, "inactive", now, detail)
            return
        changes.move(alert, "resolved", now, detail)
        if alert.notified and alert.rule.targets:
            changes.notices.append(Notice.of(alert, "resolved", now))

    def _silenced(self, alert: Alert, now: float) -> bool:
        return any(s.mutes(alert.labels, now) for s in self.silences)

    def _unreachable(self, now: float, changes: Changes) -> None:
        if self.unreachable_since is None:
            self.unreachable_since = now
        if UNREACHABLE_RULE in self.active:
            self._maybe_notify(self.active[UNREACHABLE_RULE], now, changes)
            return
        if now - self.unreachable_since < self.unreachable_grace:
            return
        rule = Rule(name=UNREACHABLE_RULE, metric="metrics_service", condition="equal",
                    threshold=0, severity="critical", notify=self._everyone(),
                    description="botmon cannot read the metrics service; no rule can fire "
                                "or resolve until it is reachable again")
        alert = self.active[UNREACHABLE_RULE] = Alert.raise_for(rule, self.unreachable_since, None)
        self._fire(alert, now, changes)

    def _everyone(self) -> Notify:
        """Every channel of every rule: they are all blind while metrics cannot be read."""
        seen: dict[tuple[str, str], tuple[str, object, str]] = {}
        for rule in self.rules.values():
            for channel, target, secret in rule.targets:
                seen.setdefault((channel, repr(target)), (channel, target, secret))
        return Notify(extra=tuple(seen.values()))
