"""Audit records of every change, kept with the change and relayed to the logs service.

A record is written in the same transaction as the change it describes (the
``alerts_audit`` outbox), so a change without its record cannot exist; the relay
then stores it as a log entry of service ``botmon.audit`` (botmon.runtime.audit) and
deletes it. Every replica relays, each claiming a batch for a lease, so a replica that
dies mid-send leaves its batch to another: records are delivered at least once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc

from botmon.logs.v1 import log_entry_pb2, logs_service_pb2
from botmon.runtime.audit import audit_entry
from botmon.runtime.context import caller, request_id

__all__ = ["Actor", "AuditRecord", "AuditRelay", "rule_changes"]

log = logging.getLogger("botmon.alerts.audit")

#: Rule fields whose values are credentials: an audit record says they changed, never to what.
_SECRET_NOTIFY = ("slack", "teams", "pagerduty")
_MASK = "***"


@dataclass(frozen=True)
class Actor:
    """Who made a change: the caller's authenticated subject and role, and the request."""

    subject: str
    role: str
    request_id: str

    @classmethod
    def of(cls, context: grpc.aio.ServicerContext) -> Actor:
        """The authenticated caller (the interceptor's principal, never raw metadata)."""
        principal = caller.get()
        if principal is None:
            return cls("anonymous", "", request_id.get())
        return cls(principal.subject, principal.role, request_id.get())


@dataclass(frozen=True)
class AuditRecord:
    """One change: ``action`` on ``resource`` by ``actor`` at ``time``, with what changed."""

    actor: Actor
    action: str
    resource: str
    time: float
    changes: Mapping[str, Any] = field(default_factory=dict)

    def row(self) -> tuple:
        return (self.time, self.actor.subject, self.actor.role, self.actor.request_id,
                self.action, self.resource, json.dumps(self.changes, sort_keys=True))


def _masked(spec: Mapping[str, Any]) -> dict[str, Any]:
    shown = dict(spec)
    notify = dict(shown.get("notify") or {})
    for channel in _SECRET_NOTIFY:
        if notify.get(channel):
            notify[channel] = _MASK
    if notify:
        shown["notify"] = notify
    return shown


def rule_changes(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, *,
                 secret_before: bool = False, secret_after: bool = False) -> dict[str, Any]:
    """The fields that differ between two rule specs, credentials masked.

    A field holding a credential that changed shows as ``***`` on both sides; the
    rule's HMAC ``secret`` appears only as ``has_secret``.
    """
    old, new = _masked(before or {}), _masked(after or {})
    changed: dict[str, Any] = {}
    for key in sorted(set(old) | set(new)):
        if old.get(key) == new.get(key) and (before or {}).get(key) == (after or {}).get(key):
            continue
        if key == "notify":
            raw_old, raw_new = (before or {}).get(key) or {}, (after or {}).get(key) or {}
            channels = sorted(set(raw_old) | set(raw_new))
            changed[key] = {c: [old.get(key, {}).get(c), new.get(key, {}).get(c)]
                            for c in channels if raw_old.get(c) != raw_new.get(c)}
            continue
        changed[key] = [old.get(key), new.get(key)]
    if secret_before != secret_after:
        changed["has_secret"] = [secret_before, secret_after]
    return changed


def _entry(row: Mapping[str, Any]) -> log_entry_pb2.LogEntry:
    return audit_entry(audit_id=f"alerts-{row['id']}", time=row["time"], subject=row["subject"],
                       role=row["role"], request_id=row["request_id"], action=row["action"],
                       resource=row["resource"], changes=json.loads(row["changes"]))


class AuditRelay:
    """Moves audit records from the store's outbox into the logs service."""

    def __init__(self, store, write_logs: Callable, *, deadline: float, batch: int = 500,
                 idle_poll: float = 5.0, clock: Callable[[], float]):
        self.store = store
        self.write_logs = write_logs
        self.deadline = deadline
        self.batch = batch
        self.idle_poll = idle_poll
        self.clock = clock
        self.relayed = 0
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                sent = await self.relay_once()
                failures = 0
            except Exception as exc:  # the logs service or the store is down: retry, never die
                failures += 1
                delay = min(30.0, 0.5 * 2 ** min(failures, 6)) * random.uniform(0.8, 1.2)
                log.warning("audit records not relayed yet; retrying",
                            extra={"error": str(exc), "retry_in_seconds": round(delay, 2)})
                await self._sleep(delay)
                continue
            if sent < self.batch:
                await self._sleep(self.idle_poll)

    async def relay_once(self) -> int:
        """Relay one claimed batch; returns how many records went out."""
        rows = await self.store.claim_audit(self.clock(), lease=3 * self.deadline,
                                            limit=self.batch)
        if not rows:
            return 0
        await self.write_logs(logs_service_pb2.WriteLogsRequest(logs=[_entry(r) for r in rows]),
                              timeout=self.deadline)
        await self.store.forget_audit([r["id"] for r in rows])
        self.relayed += len(rows)
        return len(rows)

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except TimeoutError:
            pass
