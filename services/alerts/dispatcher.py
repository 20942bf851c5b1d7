"""Delivers the outbox: each row on its own task, retried with backoff, recorded in history.

Before every attempt a firing or repeat notice is checked against the silences
and the alert's acknowledgement as they are now, so a silence mutes what is
still queued (for group_wait or a retry) and an acknowledgement stops a queued
repeat, and a notice of an alert that has resolved meanwhile is not sent after its
resolve; such rows are dropped with the reason in history.

A row is marked done only after its receiver accepted it, so a notification
written in the same commit as its transition is sent even if the process dies
right after that commit. Rows run concurrently, so a slow or failing channel
never holds up another.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from botmon.runtime.backoff import Backoff
from services.alerts.notifiers import Notifiers, Outcome, describe_target
from services.alerts.store import AlertsStore, OutboxRow, history_row

__all__ = ["Dispatcher", "delivery_record"]

log = logging.getLogger("botmon.alerts.dispatcher")

MAX_IN_FLIGHT = 200
#: Notice kinds a silence mutes until sent (and, for repeats, an acknowledgement stops).
MUTABLE = ("firing", "repeat")
_OUTCOMES = {"done": "delivered", "pending": "will retry", "failed": "gave up"}


def delivery_record(channel: str, target: object, kind: str, attempt: int, outcome: Outcome,
                    now: float) -> dict:
    """A delivery attempt as history stores it (the Delivery message's fields)."""
    return {"channel": channel, "target": describe_target(channel, target), "kind": kind,
            "attempt": attempt, "status_code": outcome.status_code, "error": outcome.error,
            "success": outcome.success, "time": now}


class Dispatcher:
    """Runs while this replica leads; ``wake()`` when new rows were committed."""

    def __init__(self, store: AlertsStore, notifiers: Notifiers, *, attempts: int,
                 backoff: Backoff, poll: float, clock: Callable[[], float] = time.time,
                 on_unnotified: Callable[[str], None] = lambda alert_id: None):
        self.store = store
        self.notifiers = notifiers
        self.attempts = attempts
        self.backoff = backoff
        self.poll = poll
        self.clock = clock
        self.on_unnotified = on_unnotified
        self._wake = asyncio.Event()
        self._inflight: dict[int, asyncio.Task] = {}
        #: Rows whose attempt could not be recorded: row id -> when to try again. The row is
        #: still due in the store, so without this it would be retried at once, in a loop.
        self._held: dict[int, float] = {}

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Deliver until cancelled; cancelling also cancels deliveries in flight."""
        try:
            while True:
                self._wake.clear()
                timeout = self.poll
                try:
                    timeout = await self._round()
                except Exception:
                    log.exception("outbox scan failed; retrying")
                try:
                    await asyncio.wait_for(self._wake.wait(), max(0.01, timeout))
                except TimeoutError:
                    pass
        finally:
            tasks = list(self._inflight.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._inflight.clear()

    async def _round(self) -> float:
        """Start every due row there is room for; return how long to sleep."""
        now = self.clock()
        self._held = {i: t for i, t in self._held.items() if t > now}
        room = MAX_IN_FLIGHT - len(self._inflight)
        if room <= 0:
            return self.poll
        for row in await self.store.due(now, room, exclude={*self._inflight, *self._held}):
            task = asyncio.create_task(self._deliver(row), name=f"deliver-{row.id}")
            self._inflight[row.id] = task
        upcoming = await self.store.next_due(exclude={*self._inflight, *self._held})
        times = [t for t in (upcoming, *self._held.values()) if t is not None]
        if not times:
            return self.poll
        return min(self.poll, min(times) - self.clock())

    async def _suppression(self, row: OutboxRow, now: float) -> str:
        """Why a queued firing or repeat must not go out now ("" if it must)."""
        if row.kind not in MUTABLE:
            return ""  # resolve and acknowledgement notices close what was already announced
        state, acknowledged = await self.store.alert_state(row.alert_id)
        if state != "firing":
            # Sent now, it would arrive after the resolve and leave receivers showing it firing.
            return "superseded: the alert resolved before delivery"
        if row.kind == "repeat" and acknowledged:
            return "suppressed by acknowledgement"
        labels = row.payload.get("labels") or {}
        for silence in await self.store.active_silences(now):
            if silence.mutes(labels, now):
                return f"suppressed by silence {silence.silence_id}"
        return ""

    async def _suppress(self, row: OutboxRow, reason: str, now: float) -> None:
        """Drop the row, saying why in history; a muted first notice is owed again later."""
        unnotify = row.kind == "firing" and reason.startswith("suppressed by silence")
        if unnotify:
            # So the evaluator announces the alert once the silence ends, as Alertmanager does.
            self.on_unnotified(row.alert_id)
        record = delivery_record(row.channel, row.target, row.kind, row.attempts,
                                 Outcome(0, False, reason), now)
        history = history_row(now, row.alert_id, row.rule, row.severity, "delivery",
                              value=row.payload.get("current_value"), detail=reason,
                              delivery=record)
        await self.store.suppress(row, history=history, unnotify=unnotify)

    async def _deliver(self, row: OutboxRow) -> None:
        try:
            reason = await self._suppression(row, self.clock())
            if reason:
                await self._suppress(row, reason, self.clock())
                return
            outcome = await self.notifiers.send(row.channel, row.target, row.secret, row.payload)
            now = self.clock()
            row.attempts += 1
            if outcome.success:
                status, next_at = "done", now
            elif outcome.retryable and row.attempts < self.attempts:
                status, next_at = "pending", now + self.backoff.delay(row.attempts)
            else:
                status, next_at = "failed", now
            record = delivery_record(row.channel, row.target, row.kind, row.attempts, outcome, now)
            history = history_row(now, row.alert_id, row.rule, row.severity, "delivery",
                                  value=row.payload.get("current_value"),
                                  detail=_OUTCOMES[status], delivery=record)
            await self.store.record_attempt(row, status=status, next_attempt_at=next_at,
                                            error=outcome.error, history=history)
            if not outcome.success:
                log.warning("delivery failed", extra={
                    "channel": row.channel, "alert_id": row.alert_id, "kind": row.kind,
                    "attempt": row.attempts, "error": outcome.error, "next": status})
        except Exception:
            # Retried with the same backoff as a failed delivery, never at once.
            self._held[row.id] = self.clock() + self.backoff.delay(row.attempts + 1)
            log.exception("recording a delivery failed", extra={"outbox_id": row.id})
        finally:
            self._inflight.pop(row.id, None)
            self._wake.set()
