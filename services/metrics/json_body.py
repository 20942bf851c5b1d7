"""``POST /metrics/events`` bodies (``RecordEventsHttp``): JSON text read once into events.

The body is a ``RecordEventsRequest`` in its JSON form, read as the gateway reads
any request (:mod:`botmon.runtime.jsonbody`, :mod:`botmon.runtime.jsonfields`): a
member or value that is not what its field takes refuses the whole body with the
field's path, as it would if the gateway had built the protobuf. Each event
becomes a :class:`JsonEvent`, which has the attributes of ``botmon.metrics.v1.Event``
(unset ones at their defaults), so :func:`services.metrics.events.aggregate` applies
the same rules to it, reading its time with :func:`json_time`.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import FieldDescriptor

from botmon.metrics.v1 import metrics_pb2, metrics_service_pb2
from botmon.runtime.jsonbody import decode_json
from botmon.runtime.jsonfields import (
    INT_RANGES,
    array_member,
    member_names,
    object_item,
    parse_timestamp,
    scalar,
    unknown_field,
)
from services.metrics.events import check_batch_size

__all__ = ["JsonEvent", "json_time", "read_events"]

_REQUEST = metrics_service_pb2.RecordEventsRequest.DESCRIPTOR
_EVENT = metrics_pb2.Event.DESCRIPTOR
_NAMES = member_names(_EVENT)
_FD = _EVENT.fields_by_name
_T = FieldDescriptor
_INT_RANGES = {kind: range(low, high + 1) for kind, (low, high) in INT_RANGES.items()}
#: Member name -> (field name, Python type taken as it comes, range of an integer): a value
#: of any other type is checked and converted by ``scalar``, which refuses it or says what
#: to fix. Doubles take integers too, converted.
_PLAIN = {key: (name, str if fd.type == _T.TYPE_STRING else float if fd.type == _T.TYPE_DOUBLE
                else int if fd.type in _INT_RANGES else None, _INT_RANGES.get(fd.type))
          for key, name in _NAMES.items() for fd in (_FD[name],)}


class JsonEvent:
    """An event of a JSON body, with the attributes of ``botmon.metrics.v1.Event``; those
    the body does not set read as the proto's defaults (class attributes below)."""

    #: Unix seconds, or None when the event has no timestamp.
    time: float | None = None


for _fd in _EVENT.fields:
    if _fd.type != _T.TYPE_MESSAGE:
        setattr(JsonEvent, _fd.name, _fd.default_value)


def json_time(event: JsonEvent) -> float | None:
    """A :class:`JsonEvent`'s time, for :func:`services.metrics.events.aggregate`."""
    return event.time


def read_events(body: bytes) -> list[JsonEvent]:
    """The events of a JSON ``RecordEventsRequest``; raises InvalidArgument for a body
    that is not one."""
    # No member of an event takes an object or array: nothing can nest past the limit.
    events = array_member(decode_json(body, nesting=False), _REQUEST)
    check_batch_size(events, "events")
    return [_event(item, index) for index, item in enumerate(events)]


def _event(item: Any, index: int) -> JsonEvent:
    object_item(item, f"events[{index}]")
    event = JsonEvent()
    values = event.__dict__
    for key, value in item.items():
        plain = _PLAIN.get(key)
        if plain is None:
            raise unknown_field(f"events[{index}].{key}", _EVENT)
        name, kind, span = plain
        taken = type(value)
        if taken is kind and (span is None or value in span):
            values[name] = value
        elif value is None:
            continue
        elif kind is float and taken is int:
            values[name] = float(value)
        elif name == "timestamp":
            seconds, nanos = parse_timestamp(value, f"events[{index}].timestamp")
            values["time"] = seconds + nanos * 1e-9
        else:
            values[name] = scalar(_FD[name], value, f"events[{index}].{key}")
    return event
