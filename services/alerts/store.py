"""Rules, alerts, silences, history and the notification outbox, in the suite's store.

Every write that other replicas must notice (rules, acknowledgements,
silences) bumps ``alerts_version`` in the same transaction, so the leader
reloads its in-memory state only when something changed.

Secrets never reach the store in clear (CONTRACT.md §11): a rule's ``secret``
and its Slack, Teams and PagerDuty targets are sealed (botmon.runtime.sealing)
wherever they are written — the rule, the copy of the rule each alert keeps,
the outbox — and opened when read. Values written before sealing existed, or
sealed with a key that is no longer the newest, are re-sealed on open.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from botmon.runtime.errors import FailedPrecondition, InvalidArgument, NotFound
from botmon.runtime.sealing import PREFIX, Sealer
from services.alerts.alert import ACTIVE, Alert
from services.alerts.audit import Actor, AuditRecord, rule_changes
from services.alerts.database import PostgresStore, SqliteStore, open_database
from services.alerts.lifecycle import Changes, Notice
from services.alerts.rule import Rule
from services.alerts.schema import create_schema
from services.alerts.silence import Matcher, Silence

__all__ = ["ACK_CHANNELS", "SEALED_CHANNELS", "AlertsStore", "OutboxRow"]

#: Channels told about an acknowledgement: PagerDuty acts on it, chat rooms announce it.
ACK_CHANNELS = ("pagerduty", "slack", "teams")
#: Channels whose target is itself a credential: incoming-webhook URLs and routing keys.
SEALED_CHANNELS = ("slack", "teams", "pagerduty")

_ALERT_COLUMNS = (
    "alert_id", "rule", "fingerprint", "state", "severity", "rule_spec", "rule_secret",
    "rule_update_time", "triggered_at", "fired_at", "resolved_at", "cleared_at", "current_value",
    "message", "labels", "notified", "last_notified_at", "silenced")
# Acknowledgement columns are written by AcknowledgeAlert only, so the evaluator never undoes one.
_UPSERT_ALERT = (
    f"INSERT INTO alerts_alerts ({', '.join(_ALERT_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _ALERT_COLUMNS)}) ON CONFLICT (alert_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _ALERT_COLUMNS[1:]))
_INSERT_HISTORY = (
    "INSERT INTO alerts_history (time, alert_id, rule, severity, kind, from_state, to_state, "
    "value, detail, delivery) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
_INSERT_OUTBOX = (
    "INSERT INTO alerts_outbox (alert_id, rule, severity, kind, channel, target, secret, payload, "
    "next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
_INSERT_AUDIT = (
    "INSERT INTO alerts_audit (time, subject, role, request_id, action, resource, changes) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)")
_BUMP = "UPDATE alerts_version SET version = version + 1 WHERE id = 1"


@dataclass
class OutboxRow:
    """One notification to one channel target, until delivered or given up."""

    id: int
    alert_id: str
    rule: str
    severity: str
    kind: str
    channel: str
    target: Any
    secret: str
    payload: dict[str, Any]
    attempts: int


def _silence(row: dict[str, Any]) -> Silence:
    matchers = tuple(Matcher(**m) for m in json.loads(row["matchers"]))
    return Silence(silence_id=row["silence_id"], matchers=matchers, starts_at=row["starts_at"],
                   ends_at=row["ends_at"], created_by=row["created_by"], comment=row["comment"])


def history_row(time: float, alert_id: str, rule: str, severity: str, kind: str, *,
                from_state: str = "", to_state: str = "", value: float | None = None,
                detail: str = "", delivery: dict | None = None) -> tuple:
    return (time, alert_id, rule, severity, kind, from_state, to_state, value, detail,
            json.dumps(delivery) if delivery is not None else None)


def _encode_token(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"h:{last_id}".encode()).decode().rstrip("=")


def _decode_token(token: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        prefix, _, value = raw.partition(":")
        if prefix != "h" or not value.isdecimal():
            raise ValueError
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidArgument("page_token is not a token this service returned; "
                              "pass next_page_token from the previous page") from None


class AlertsStore:
    """The alerts service's persistent state."""

    def __init__(self, db: SqliteStore | PostgresStore, sealer: Sealer):
        self.db = db
        self.sealer = sealer

    @classmethod
    async def open(cls, store_url: str, deadline: float, sealer: Sealer) -> AlertsStore:
        """Open the store, creating its tables and re-sealing what is not sealed with the
        newest key; a stored secret no key opens raises SealError (a ConfigError)."""
        db = await open_database(store_url, deadline)
        try:
            await create_schema(db)
            store = cls(db, sealer)
            await store.reseal()
        except BaseException:
            await db.close()
            raise
        return store

    # -- sealing -------------------------------------------------------------

    def _spec_fields(self, spec: dict[str, Any], transform) -> dict[str, Any]:
        notify = spec.get("notify") or {}
        for channel in SEALED_CHANNELS:
            notify[channel] = transform(notify.get(channel) or "")
        notify["extra"] = [[channel, transform(target) if channel in SEALED_CHANNELS else target,
                            transform(secret)]
                           for channel, target, secret in notify.get("extra") or ()]
        spec["notify"] = notify
        return spec

    def _stored_spec(self, rule: Rule) -> str:
        """The rule's spec as stored: sealed, unless it has no credential target at all
        (most rules; a cycle writing thousands of their alerts skips the JSON round trip)."""
        n = rule.notify
        if not (n.slack or n.teams or n.pagerduty or n.extra):
            return rule.to_json()
        return self.seal_spec(rule.to_json())

    def seal_spec(self, plain: str) -> str:
        """A rule's JSON spec with its credential targets sealed."""
        return json.dumps(self._spec_fields(json.loads(plain), self.sealer.seal), sort_keys=True)

    def open_spec(self, stored: str) -> str:
        """The plain JSON spec of a stored one (as ``Rule.to_json`` writes it)."""
        if PREFIX not in stored:
            return stored  # nothing sealed in it: written so, or from before sealing existed
        return json.dumps(self._spec_fields(json.loads(stored), self.sealer.open),
                          sort_keys=True)

    def _spec_current(self, stored: str) -> bool:
        current = True

        def check(value: Any) -> Any:
            nonlocal current
            current = current and self.sealer.current(value)
            return value
        self._spec_fields(json.loads(stored), check)
        return current

    def _alert_row(self, alert: Alert) -> tuple:
        rule = alert.rule
        return (alert.alert_id, rule.name, alert.fingerprint, alert.state, rule.severity,
                self._stored_spec(rule), self.sealer.seal(rule.secret), rule.update_time,
                alert.triggered_at, alert.fired_at, alert.resolved_at, alert.cleared_at,
                alert.current_value, alert.message, rule.labels_json, int(alert.notified),
                alert.last_notified_at, int(alert.silenced))

    def _alert(self, row: dict[str, Any]) -> Alert:
        rule = Rule.from_json(self.open_spec(row["rule_spec"]),
                              secret=self.sealer.open(row["rule_secret"]),
                              update_time=row["rule_update_time"])
        return Alert(alert_id=row["alert_id"], rule=rule, state=row["state"],
                     triggered_at=row["triggered_at"], current_value=row["current_value"],
                     message=row["message"], fired_at=row["fired_at"],
                     resolved_at=row["resolved_at"], cleared_at=row["cleared_at"],
                     acknowledged_by=row["acknowledged_by"],
                     acknowledged_at=row["acknowledged_at"], notes=row["notes"],
                     notified=bool(row["notified"]), last_notified_at=row["last_notified_at"],
                     silenced=bool(row["silenced"]), labels=json.loads(row["labels"]),
                     fingerprint=row["fingerprint"])

    def _rule(self, row: dict[str, Any]) -> Rule:
        return Rule.from_json(self.open_spec(row["spec"]), secret=self.sealer.open(row["secret"]),
                              create_time=row["create_time"], update_time=row["update_time"])

    def _target(self, channel: str, target: Any) -> str:
        return json.dumps(self.sealer.seal(target) if channel in SEALED_CHANNELS else target)

    def outbox_rows(self, notice: Notice, channels: Sequence[str] | None = None) -> list[tuple]:
        """The outbox rows of a notice: one per channel target of the alert's rule."""
        rule = notice.rule
        payload = json.dumps(notice.payload)
        return [(notice.alert_id, rule.name, rule.severity, notice.kind, channel,
                 self._target(channel, target), self.sealer.seal(secret), payload,
                 notice.due_at, notice.due_at)
                for channel, target, secret in rule.targets
                if channels is None or channel in channels]

    async def reseal(self) -> int:
        """Seal with the newest key every secret that is plaintext or sealed with an older
        one; returns the rows rewritten. Old plaintext is wiped from the SQLite file too."""
        rewritten = 0
        async with self.db.transaction() as tx:
            for row in await tx.fetch("SELECT name, spec, secret FROM alerts_rules"):
                if self._spec_current(row["spec"]) and self.sealer.current(row["secret"]):
                    continue
                await tx.execute("UPDATE alerts_rules SET spec = ?, secret = ? WHERE name = ?",
                                 (self.seal_spec(self.open_spec(row["spec"])),
                                  self.sealer.seal(self.sealer.open(row["secret"])),
                                  row["name"]))
                rewritten += 1
            for row in await tx.fetch("SELECT alert_id, rule_spec, rule_secret "
                                      "FROM alerts_alerts"):
                if self._spec_current(row["rule_spec"]) and \
                        self.sealer.current(row["rule_secret"]):
                    continue
                await tx.execute("UPDATE alerts_alerts SET rule_spec = ?, rule_secret = ? "
                                 "WHERE alert_id = ?",
                                 (self.seal_spec(self.open_spec(row["rule_spec"])),
                                  self.sealer.seal(self.sealer.open(row["rule_secret"])),
                                  row["alert_id"]))
                rewritten += 1
            for row in await tx.fetch("SELECT id, channel, target, secret FROM alerts_outbox"):
                target = json.loads(row["target"])
                sealed_target = row["channel"] in SEALED_CHANNELS
                if (not sealed_target or self.sealer.current(target)) and \
                        self.sealer.current(row["secret"]):
                    continue
                plain = self.sealer.open(target) if sealed_target else target
                await tx.execute("UPDATE alerts_outbox SET target = ?, secret = ? WHERE id = ?",
                                 (self._target(row["channel"], plain),
                                  self.sealer.seal(self.sealer.open(row["secret"])), row["id"]))
                rewritten += 1
        if rewritten:
            await self.db.forget_overwritten()
        return rewritten

    async def close(self) -> None:
        await self.db.close()

    # -- rules ---------------------------------------------------------------

    async def install_defaults(self, rules: Iterable[Rule], now: float) -> bool:
        """Store the default rules once per store; never again, even after they are deleted."""
        async with self.db.transaction() as tx:
            first = await tx.execute("INSERT INTO alerts_meta (key, value) VALUES "
                                     "('defaults_installed', '1') ON CONFLICT (key) DO NOTHING")
            if not first:
                return False
            await tx.executemany(
                "INSERT INTO alerts_rules (name, spec, secret, create_time, update_time) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
                [(r.name, self._stored_spec(r), self.sealer.seal(r.secret), now, now)
                 for r in rules])
            await tx.execute(_BUMP)
        return True

    async def put_rule(self, rule: Rule, now: float, actor: Actor) -> tuple[Rule, bool]:
        """Create or replace the rule; returns it as stored and whether it is new."""
        async with self.db.transaction() as tx:
            rows = await tx.fetch(
                "SELECT spec, secret, create_time, update_time FROM alerts_rules WHERE name = ?",
                (rule.name,))
            created = not rows
            create_time = now if created else rows[0]["create_time"]
            # The update time identifies the rule's version, so a replacement must change it.
            update_time = now if created else max(now, rows[0]["update_time"] + 1e-6)
            await tx.execute(
                "INSERT INTO alerts_rules (name, spec, secret, create_time, update_time) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, "
                "secret = excluded.secret, update_time = excluded.update_time",
                (rule.name, self._stored_spec(rule), self.sealer.seal(rule.secret),
                 create_time, update_time))
            before = None if created else json.loads(self.open_spec(rows[0]["spec"]))
            await tx.execute(_INSERT_AUDIT, AuditRecord(
                actor, "rule.created" if created else "rule.replaced", f"rules/{rule.name}", now,
                rule_changes(before, json.loads(rule.to_json()),
                             secret_before=bool(rows and rows[0]["secret"]),
                             secret_after=bool(rule.secret))).row())
            await tx.execute(_BUMP)
        stored = Rule.from_json(rule.to_json(), secret=rule.secret, create_time=create_time,
                                update_time=update_time)
        return stored, created

    async def delete_rule(self, name: str, now: float, actor: Actor) -> None:
        async with self.db.transaction() as tx:
            rows = await tx.fetch("DELETE FROM alerts_rules WHERE name = ? RETURNING spec, secret",
                                  (name,))
            if not rows:
                raise NotFound(f"no alert rule named {name!r}; GET /alerts/rules lists them")
            await tx.execute(_INSERT_AUDIT, AuditRecord(
                actor, "rule.deleted", f"rules/{name}", now,
                rule_changes(json.loads(self.open_spec(rows[0]["spec"])), None,
                             secret_before=bool(rows[0]["secret"]))).row())
            await tx.execute(_BUMP)

    async def get_rule(self, name: str) -> Rule:
        rule = await self.find_rule(name)
        if rule is None:
            raise NotFound(f"no alert rule named {name!r}; GET /alerts/rules lists them")
        return rule

    async def find_rule(self, name: str) -> Rule | None:
        rows = await self.db.fetch("SELECT * FROM alerts_rules WHERE name = ?", (name,))
        return self._rule(rows[0]) if rows else None

    async def list_rules(self) -> list[Rule]:
        rows = await self.db.fetch("SELECT * FROM alerts_rules ORDER BY name")
        return [self._rule(r) for r in rows]

    # -- evaluator state -----------------------------------------------------

    async def version(self) -> int:
        rows = await self.db.fetch("SELECT version FROM alerts_version WHERE id = 1")
        return int(rows[0]["version"])

    async def load(self, now: float) -> tuple[int, list[Rule], list[Alert], list[Silence]]:
        """Everything the evaluator holds in memory, read consistently, with its version."""
        async with self.db.transaction() as tx:
            version = (await tx.fetch("SELECT version FROM alerts_version WHERE id = 1"))[0]
            rules = [self._rule(r) for r in await tx.fetch("SELECT * FROM alerts_rules")]
            alerts = [self._alert(r) for r in await tx.fetch(
                "SELECT * FROM alerts_alerts WHERE state IN ('pending', 'firing')")]
            silences = [_silence(r) for r in await tx.fetch(
                "SELECT * FROM alerts_silences WHERE ends_at > ?", (now,))]
        return int(version["version"]), rules, alerts, silences

    async def apply(self, changes: Changes) -> int:
        """Write one cycle's changes in one transaction; returns the outbox rows written."""
        history = [history_row(t.time, t.alert_id, t.rule, t.severity, "transition",
                               from_state=t.from_state, to_state=t.to_state, value=t.value,
                               detail=t.detail)
                   for t in changes.transitions]
        outbox = [row for notice in changes.notices for row in self.outbox_rows(notice)]
        async with self.db.transaction() as tx:
            await tx.executemany(_UPSERT_ALERT,
                                 [self._alert_row(a) for a in changes.alerts.values()])
            await tx.executemany(_INSERT_HISTORY, history)
            await tx.executemany(_INSERT_OUTBOX, outbox)
        return len(outbox)

    # -- alerts --------------------------------------------------------------

    async def list_alerts(self, states: Sequence[str] = ACTIVE) -> list[Alert]:
        marks = ", ".join("?" for _ in states)
        rows = await self.db.fetch(f"SELECT * FROM alerts_alerts WHERE state IN ({marks}) "
                                   "ORDER BY triggered_at DESC, alert_id", tuple(states))
        return [self._alert(r) for r in rows]

    async def acknowledge(self, alert_id: str, by: str, notes: str, now: float,
                          actor: Actor) -> Alert:
        """Acknowledge an active alert once; PagerDuty and chat rooms are told in the same commit."""
        lock = " FOR UPDATE" if self.db.kind == "postgresql" else ""
        async with self.db.transaction() as tx:
            rows = await tx.fetch(f"SELECT * FROM alerts_alerts WHERE alert_id = ?{lock}",
                                  (alert_id,))
            if not rows:
                raise NotFound(f"no alert with id {alert_id!r}; GET /alerts lists active alerts")
            alert = self._alert(rows[0])
            if alert.state not in ACTIVE:
                raise FailedPrecondition(f"alert {alert_id} is {alert.state}; only pending or "
                                         "firing alerts can be acknowledged")
            if alert.acknowledged:
                return alert
            alert.acknowledged_by, alert.acknowledged_at, alert.notes = by, now, notes
            await tx.execute("UPDATE alerts_alerts SET acknowledged_by = ?, acknowledged_at = ?, "
                             "notes = ? WHERE alert_id = ?", (by, now, notes, alert_id))
            await tx.execute(_INSERT_HISTORY, history_row(
                now, alert_id, alert.rule.name, alert.rule.severity, "acknowledgement",
                value=alert.current_value, detail=f"{by}: {notes}" if notes else by))
            if alert.notified and not alert.silenced:
                await tx.executemany(_INSERT_OUTBOX, self.outbox_rows(
                    Notice.of(alert, "acknowledged", now), ACK_CHANNELS))
            await tx.execute(_INSERT_AUDIT, AuditRecord(
                actor, "alert.acknowledged", f"alerts/{alert_id}", now,
                {"rule": alert.rule.name, "acknowledged_by": by, "notes": notes}).row())
            await tx.execute(_BUMP)
        return alert

    # -- silences ------------------------------------------------------------

    async def create_silence(self, silence: Silence, now: float, actor: Actor) -> None:
        async with self.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO alerts_silences (silence_id, matchers, starts_at, ends_at, "
                "created_by, comment) VALUES (?, ?, ?, ?, ?, ?)",
                (silence.silence_id, json.dumps([m.to_dict() for m in silence.matchers]),
                 silence.starts_at, silence.ends_at, silence.created_by, silence.comment))
            await tx.execute(_INSERT_AUDIT, AuditRecord(
                actor, "silence.created", f"silences/{silence.silence_id}", now,
                {"matchers": [m.to_dict() for m in silence.matchers],
                 "starts_at": silence.starts_at, "ends_at": silence.ends_at,
                 "comment": silence.comment}).row())
            await tx.execute(_BUMP)

    async def list_silences(self) -> list[Silence]:
        rows = await self.db.fetch("SELECT * FROM alerts_silences ORDER BY ends_at DESC")
        return [_silence(r) for r in rows]

    async def active_silences(self, now: float) -> list[Silence]:
        rows = await self.db.fetch("SELECT * FROM alerts_silences WHERE starts_at <= ? AND "
                                   "ends_at > ?", (now, now))
        return [_silence(r) for r in rows]

    async def expire_silence(self, silence_id: str, now: float, actor: Actor) -> Silence:
        async with self.db.transaction() as tx:
            rows = await tx.fetch("SELECT * FROM alerts_silences WHERE silence_id = ?",
                                  (silence_id,))
            if not rows:
                raise NotFound(f"no silence with id {silence_id!r}; GET /alerts/silences "
                               "lists them")
            silence = _silence(rows[0])
            if silence.state(now) == "expired":
                return silence
            await tx.execute("UPDATE alerts_silences SET ends_at = ? WHERE silence_id = ?",
                             (now, silence_id))
            await tx.execute(_INSERT_AUDIT, AuditRecord(
                actor, "silence.expired", f"silences/{silence_id}", now,
                {"ends_at": [silence.ends_at, now]}).row())
            await tx.execute(_BUMP)
        return Silence(silence.silence_id, silence.matchers, min(silence.starts_at, now), now,
                       silence.created_by, silence.comment)

    # -- audit ---------------------------------------------------------------

    async def claim_audit(self, now: float, *, lease: float, limit: int) -> list[dict[str, Any]]:
        """The oldest unclaimed audit records, claimed until ``now + lease``, oldest first."""
        skip = " FOR UPDATE SKIP LOCKED" if self.db.kind == "postgresql" else ""
        async with self.db.transaction() as tx:
            rows = await tx.fetch(
                "UPDATE alerts_audit SET claimed_until = ? WHERE id IN (SELECT id FROM "
                f"alerts_audit WHERE claimed_until < ? ORDER BY id LIMIT ?{skip}) RETURNING *",
                (now + lease, now, limit))
        return sorted(rows, key=lambda r: r["id"])

    async def forget_audit(self, ids: Sequence[int]) -> None:
        """Delete relayed audit records."""
        async with self.db.transaction() as tx:
            await tx.executemany("DELETE FROM alerts_audit WHERE id = ?", [(i,) for i in ids])

    # -- history -------------------------------------------------------------

    async def add_history(self, rows: Sequence[tuple]) -> None:
        async with self.db.transaction() as tx:
            await tx.executemany(_INSERT_HISTORY, rows)

    async def prune(self, cutoff: float, batch: int) -> int:
        """Delete up to ``batch`` history entries, ended alerts and expired silences each that
        are older than ``cutoff``, one short statement apiece; returns the rows deleted."""
        limit = int(batch)
        deleted = await self.db.execute(
            "DELETE FROM alerts_history WHERE id IN (SELECT id FROM alerts_history "
            f"WHERE time < ? ORDER BY time LIMIT {limit})", (cutoff,))
        deleted += await self.db.execute(
            "DELETE FROM alerts_alerts WHERE alert_id IN (SELECT alert_id FROM alerts_alerts "
            f"WHERE state IN ('resolved', 'inactive') AND resolved_at < ? LIMIT {limit})",
            (cutoff,))
        # The evaluator loads only unexpired silences, so removing old ones needs no reload.
        deleted += await self.db.execute(
            "DELETE FROM alerts_silences WHERE silence_id IN (SELECT silence_id FROM "
            f"alerts_silences WHERE ends_at < ? LIMIT {limit})", (cutoff,))
        return deleted

    async def history(self, *, rule: str = "", severity: str = "", alert_id: str = "",
                      start: float | None = None, end: float | None = None, page_size: int = 100,
                      page_token: str = "") -> tuple[list[dict[str, Any]], str]:
        """A page of history, newest first, and the token of the next page ("" on the last)."""
        where, args = [], []
        for column, value in (("rule", rule), ("severity", severity), ("alert_id", alert_id)):
            if value:
                where.append(f"{column} = ?")
                args.append(value)
        if start is not None:
            where.append("time >= ?")
            args.append(start)
        if end is not None:
            where.append("time < ?")
            args.append(end)
        if page_token:
            where.append("id < ?")
            args.append(_decode_token(page_token))
        sql = "SELECT * FROM alerts_history"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = await self.db.fetch(sql + f" ORDER BY id DESC LIMIT {page_size + 1}", tuple(args))
        for row in rows:
            row["delivery"] = json.loads(row["delivery"]) if row["delivery"] else None
        if len(rows) > page_size:
            return rows[:page_size], _encode_token(rows[page_size - 1]["id"])
        return rows, ""

    # -- outbox --------------------------------------------------------------

    async def due(self, now: float, limit: int, exclude: Iterable[int] = ()) -> list[OutboxRow]:
        """Pending notifications whose time has come, oldest first."""
        skip = list(exclude)
        sql = "SELECT * FROM alerts_outbox WHERE next_attempt_at <= ?"
        if skip:
            sql += f" AND id NOT IN ({', '.join('?' for _ in skip)})"
        rows = await self.db.fetch(sql + f" ORDER BY id LIMIT {int(limit)}", (now, *skip))
        return [OutboxRow(id=r["id"], alert_id=r["alert_id"], rule=r["rule"],
                          severity=r["severity"], kind=r["kind"], channel=r["channel"],
                          target=self._opened_target(r["channel"], r["target"]),
                          secret=self.sealer.open(r["secret"]),
                          payload=json.loads(r["payload"]), attempts=r["attempts"])
                for r in rows]

    def _opened_target(self, channel: str, stored: str) -> Any:
        target = json.loads(stored)
        return self.sealer.open(target) if channel in SEALED_CHANNELS else target

    async def next_due(self, exclude: Iterable[int] = ()) -> float | None:
        """When the next pending notification (not among ``exclude``) is due."""
        skip = list(exclude)
        sql = "SELECT MIN(next_attempt_at) AS t FROM alerts_outbox"
        if skip:
            sql += f" WHERE id NOT IN ({', '.join('?' for _ in skip)})"
        rows = await self.db.fetch(sql, tuple(skip))
        return rows[0]["t"] if rows else None

    async def record_attempt(self, row: OutboxRow, *, status: str, next_attempt_at: float,
                             error: str, history: tuple) -> None:
        """Record one delivery attempt: its history entry, and the row retried or removed."""
        async with self.db.transaction() as tx:
            if status == "pending":
                await tx.execute("UPDATE alerts_outbox SET attempts = ?, next_attempt_at = ?, "
                                 "last_error = ? WHERE id = ?",
                                 (row.attempts, next_attempt_at, error, row.id))
            else:
                # Delivered or given up: history keeps every attempt, so the row has done its job.
                await tx.execute("DELETE FROM alerts_outbox WHERE id = ?", (row.id,))
            await tx.execute(_INSERT_HISTORY, history)

    async def alert_state(self, alert_id: str) -> tuple[str, bool]:
        """The alert's state ("" if gone) and whether it is acknowledged."""
        rows = await self.db.fetch("SELECT state, acknowledged_at FROM alerts_alerts "
                                   "WHERE alert_id = ?", (alert_id,))
        if not rows:
            return "", False
        return rows[0]["state"], rows[0]["acknowledged_at"] is not None

    async def suppress(self, row: OutboxRow, *, history: tuple, unnotify: bool) -> None:
        """Drop a muted notification with its history entry; ``unnotify`` marks the alert as
        not yet announced, so it is announced when the silence ends."""
        async with self.db.transaction() as tx:
            await tx.execute("DELETE FROM alerts_outbox WHERE id = ?", (row.id,))
            await tx.execute(_INSERT_HISTORY, history)
            if unnotify:
                await tx.execute("UPDATE alerts_alerts SET notified = 0 WHERE alert_id = ? "
                                 "AND state = 'firing'", (row.alert_id,))

    async def pending_notifications(self) -> int:
        """Notifications not yet delivered nor given up."""
        rows = await self.db.fetch("SELECT COUNT(*) AS n FROM alerts_outbox")
        return int(rows[0]["n"])
