"""``POST /logs`` bodies (``WriteLogsHttp``): JSON text read once into the rules' fields.

The body is a ``WriteLogsRequest`` in its JSON form, read as the gateway reads
any request (:mod:`botmon.runtime.jsonbody`, :mod:`botmon.runtime.jsonfields`):
a member or value that is not what its field takes refuses the whole body with
the field's path, as it would if the gateway had built the protobuf. What is left
is what ``WriteLogs`` gets, so the entries then pass :func:`services.logs.ingest.validate`
like any others; metadata is stored as the ``Struct`` of it would be
(:func:`~services.logs.ingest.object_json`), so both ways store the same text.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from botmon.logs.v1 import log_entry_pb2, logs_service_pb2
from botmon.runtime.errors import InvalidArgument
from botmon.runtime.jsonbody import check_nesting, decode_json
from botmon.runtime.jsonfields import (
    array_member,
    member_names,
    not_an_object,
    object_item,
    parse_timestamp,
    scalar,
    unknown_field,
)
from services.logs.ingest import (
    Batch,
    EntryProblem,
    Fields,
    check_batch_size,
    object_json,
    validate,
)

__all__ = ["read_logs"]

_REQUEST = logs_service_pb2.WriteLogsRequest.DESCRIPTOR
_ENTRY = log_entry_pb2.LogEntry.DESCRIPTOR
_NAMES = member_names(_ENTRY)
_PROTO_NAMES = frozenset(_NAMES.values())
#: How deep an entry's metadata object lies in the body: body, logs array, entry object.
ENTRY_LEVEL = 3


def read_logs(body: bytes) -> Batch:
    """The entries of a JSON ``WriteLogsRequest``, validated; raises InvalidArgument for a
    body that is not one, or whose batch is empty or too large."""
    logs = array_member(decode_json(body, nesting=False), _REQUEST)
    problem = check_batch_size(len(logs))
    if problem:
        raise InvalidArgument(problem)
    return validate(_fields(logs))


def _fields(logs: list) -> Iterator[Fields | EntryProblem]:
    for index, item in enumerate(logs):
        object_item(item, f"logs[{index}]")
        if not item.keys() <= _PROTO_NAMES:
            item = _renamed(item, index)
        get = item.get
        level, service, message = get("level"), get("service"), get("message")
        # Most entries are plain strings: checked inline, the general way only otherwise.
        if type(level) is not str:
            level = _text(level, index, "level")
        if type(service) is not str:
            service = _text(service, index, "service")
        if type(message) is not str:
            message = _text(message, index, "message")
        stamp = get("timestamp")
        ts = None
        if stamp is not None:
            seconds, nanos = parse_timestamp(stamp, f"logs[{index}].timestamp")
            ts = seconds * 1_000_000_000 + nanos
        if get("id") is not None:
            # Output only: checked as the field would be, then ignored.
            scalar(_ENTRY.fields_by_name["id"], item["id"], f"logs[{index}].id")
        metadata = get("metadata")
        if metadata is None:
            yield ts, level, service, message, None
            continue
        if type(metadata) is not dict:
            raise not_an_object(f"logs[{index}].metadata", metadata)
        try:
            text = object_json(metadata)
        except EntryProblem as exc:
            # Only metadata may nest here: the body's own limit is checked where it does.
            check_nesting(metadata, ENTRY_LEVEL)
            yield exc
            continue
        yield ts, level, service, message, text


def _renamed(item: dict, index: int) -> dict:
    """``item`` with JSON names as proto names; a member naming no field is refused."""
    renamed = {}
    for key, value in item.items():
        name = _NAMES.get(key)
        if name is None:
            raise unknown_field(f"logs[{index}].{key}", _ENTRY)
        if value is not None:
            renamed[name] = value
    return renamed


def _text(value: Any, index: int, name: str) -> str:
    if value is None:
        return ""
    return scalar(_ENTRY.fields_by_name[name], value, f"logs[{index}].{name}")
