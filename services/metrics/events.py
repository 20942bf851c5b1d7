"""Validation of reported events and their aggregation into a :class:`Batch`.

Events are read through attributes (``type``, ``status``, ``duration_ms``, …) as
the generated ``botmon.metrics.v1.Event`` has them, without copying them first:
ingest is the hot path. Their time is read by a function, :func:`proto_time` for
protobuf events; a decoder of another form (JSON) gives objects with the same
attributes and its own function.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Callable, Iterable, Sized
from dataclasses import dataclass
from typing import Any

from botmon.runtime.errors import InvalidArgument
from botmon.runtime.labels import method_label
from services.metrics.buckets import DURATION_BOUNDS, Batch, ConversationDelta, SessionDelta

__all__ = ["EVENT_TYPES", "MAX_BATCH", "EventRules", "aggregate", "check_batch_size", "proto_time"]

EVENT_TYPES = ("request", "session_started", "session_ended", "conversation_started",
               "conversation_completed")

_METHOD = re.compile(r"[A-Za-z]{1,16}\Z")
_MAX_ID = 256
_MAX_DURATION_MS = 86_400_000.0
_SLOT_LABELS = [repr(b) for b in DURATION_BOUNDS] + ["+Inf"]


@dataclass(frozen=True)
class EventRules:
    """Limits on event times: at most ``future_seconds`` ahead, ``max_age_seconds`` behind."""

    max_age_seconds: float
    future_seconds: float = 300.0


#: Events per RecordEvents call, JSON body or StreamEvents message.
MAX_BATCH = 10_000


def check_batch_size(events: Sized, what: str) -> None:
    """Refuse a batch with no event or more than :data:`MAX_BATCH`, before any is read."""
    if not events:
        raise InvalidArgument(f"{what}: at least one event is required", field="events")
    if len(events) > MAX_BATCH:
        raise InvalidArgument(f"{what}: at most {MAX_BATCH} events per batch; got {len(events)}",
                              field="events")


def proto_time(event: Any) -> float | None:
    """A ``botmon.metrics.v1.Event``'s time in Unix seconds; None when unset."""
    if event.HasField("timestamp"):
        stamp = event.timestamp
        return stamp.seconds + stamp.nanos * 1e-9
    return None


def aggregate(events: Iterable, now: float, rules: EventRules, offset: int = 0,
              when: Callable[[Any], float | None] = proto_time
              ) -> tuple[Batch, list[tuple[int, str]]]:
    """Validate ``events`` and aggregate the valid ones; errors are (index, what to fix).

    The one statement of the rules of events, however they came; ``when`` reads an
    event's time (None: the time of receipt).
    """
    batch = Batch()
    errors: list[tuple[int, str]] = []
    oldest = now - rules.max_age_seconds
    newest = now + rules.future_seconds
    seconds = batch.seconds
    counters = batch.counters
    last_5xx = None
    for index, event in enumerate(events, offset):
        kind = event.type
        ts = when(event)
        if ts is not None:
            if ts > newest:
                errors.append((index, f"events[{index}].timestamp: is more than "
                               f"{rules.future_seconds:g} s in the future"))
                continue
            if ts < oldest:
                errors.append((index, f"events[{index}].timestamp: is older than the "
                               f"{rules.max_age_seconds / 86400:g}-day retention"))
                continue
        else:
            ts = now
        if len(event.service) > _MAX_ID:
            errors.append((index, f"events[{index}].service: at most {_MAX_ID} characters"))
            continue
        if kind == "request":
            problem = _request_problem(event)
            if problem:
                errors.append((index, f"events[{index}].{problem}"))
                continue
            status = event.status
            duration = event.duration_ms
            second = int(ts)
            bucket = seconds.get(second)
            if bucket is None:
                bucket = batch.bucket(second)
            bucket.add_request(status, duration, event.bytes)
            # Any method outside the HTTP set is OTHER, so no client can grow the counters.
            key = ("requests", f"{method_label(event.method)}|{status}")
            counters[key] = counters.get(key, 0) + 1
            slot = ("duration_slot", _SLOT_LABELS[bisect.bisect_left(DURATION_BOUNDS,
                                                                       duration / 1000)])
            counters[slot] = counters.get(slot, 0) + 1
            if status >= 500 and (last_5xx is None or ts > last_5xx):
                last_5xx = ts
            if event.session_id:
                _touch_session(batch, event.session_id, ts)
            if event.conversation_id:
                _touch_conversation(batch, event.conversation_id, ts)
        elif kind in ("session_started", "session_ended"):
            sid = event.session_id
            if not sid or len(sid) > _MAX_ID:
                errors.append((index, f"events[{index}].session_id: required for {kind}, "
                               f"1 to {_MAX_ID} characters"))
                continue
            delta = _touch_session(batch, sid, ts)
            if kind == "session_started":
                delta.started = ts if delta.started is None else min(delta.started, ts)
                _count(counters, "sessions_started")
            else:
                delta.ended = ts if delta.ended is None else max(delta.ended, ts)
                _count(counters, "sessions_ended")
        elif kind in ("conversation_started", "conversation_completed"):
            cid = event.conversation_id
            if not cid or len(cid) > _MAX_ID:
                errors.append((index, f"events[{index}].conversation_id: required for {kind}, "
                               f"1 to {_MAX_ID} characters"))
                continue
            if event.messages < 0:
                errors.append((index, f"events[{index}].messages: must be >= 0, "
                               f"got {event.messages}"))
                continue
            delta = _touch_conversation(batch, cid, ts)
            if kind == "conversation_started":
                delta.started = ts if delta.started is None else min(delta.started, ts)
                _count(counters, "conversations_started")
            else:
                if delta.completed is None or ts >= delta.completed:
                    delta.completed, delta.messages = ts, event.messages
                batch.bucket(int(ts)).messages += event.messages
                _count(counters, "conversations_completed")
                _count(counters, "conversation_messages", event.messages)
        else:
            errors.append((index, f"events[{index}].type: must be one of "
                           f"{', '.join(EVENT_TYPES)}; got {kind!r}"))
            continue
        batch.events += 1
    batch.last_server_error = last_5xx
    if seconds:
        _count(counters, "duration_sum_ms", sum(b.sum_ms for b in seconds.values()))
        _count(counters, "bytes", sum(b.bytes for b in seconds.values()))
    return batch, errors


def _request_problem(event) -> str | None:
    if not _METHOD.match(event.method):
        return f"method: required, 1 to 16 letters such as GET; got {event.method!r}"
    if not 100 <= event.status <= 599:
        return f"status: must be between 100 and 599, got {event.status}"
    duration = event.duration_ms
    if not (math.isfinite(duration) and 0 <= duration <= _MAX_DURATION_MS):
        return f"duration_ms: must be between 0 and {_MAX_DURATION_MS:.0f}, got {duration}"
    if event.bytes < 0:
        return f"bytes: must be >= 0, got {event.bytes}"
    if len(event.route) > 1024:
        return "route: at most 1024 characters"
    return None


def _count(counters: dict, name: str, amount: float = 1) -> None:
    key = (name, "")
    counters[key] = counters.get(key, 0) + amount


def _touch_session(batch: Batch, sid: str, ts: float) -> SessionDelta:
    delta = batch.sessions.get(sid)
    if delta is None:
        delta = batch.sessions[sid] = SessionDelta(last_seen=ts)
    elif ts > delta.last_seen:
        delta.last_seen = ts
    return delta


def _touch_conversation(batch: Batch, cid: str, ts: float) -> ConversationDelta:
    delta = batch.conversations.get(cid)
    if delta is None:
        delta = batch.conversations[cid] = ConversationDelta(last_seen=ts)
    elif ts > delta.last_seen:
        delta.last_seen = ts
    return delta
