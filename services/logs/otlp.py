"""OTLP logs (``ExportLogsServiceRequest``) turned into entries.

One log record is one entry:

- ``service``: the resource's ``service.name`` attribute, else ``"unknown"``;
- ``level``: ``severity_number`` (OpenTelemetry 1-24, read as in
  :mod:`services.logs.levels`), else ``severity_text``; an unreadable text is
  stored as ``info`` and kept as metadata ``severity_text``; neither is ``info``;
- ``message``: the body; a body that is not a string is written as JSON, and a
  record without a body takes its ``event_name``;
- ``timestamp``: ``time_unix_nano``, else ``observed_time_unix_nano``, else the
  time of receipt;
- ``metadata``: the record's attributes at the top level; the resource's other
  attributes under ``resource``; the scope's ``name``, ``version`` and
  ``attributes`` under ``scope``; ``trace_id`` and ``span_id`` as lower-case hex;
  ``event_name`` when the body is the message. Attribute keys are split on dots
  into nested objects, as Elasticsearch reads them, so ``GET
  /logs?metadata[resource.host.name]=h1`` finds ``host.name`` of the resource;
  a key whose path is taken by another value, a key named ``attributes``, and
  a record attribute named like one of the keys above (``resource``, ``scope``,
  ``trace_id``, ``span_id``, ``event_name``, ``severity_text``) are kept whole
  under ``attributes`` of the same object instead, so nothing is overwritten.
  A record with the ``exception.type`` attribute (as SDKs record exceptions)
  and no ``error_type`` also gets ``error_type`` set to it, which is what
  ``GET /errors/summary`` counts by.

Attribute values keep their JSON type; bytes are base64 (as in OTLP/JSON), and
a non-finite double is the string ``"NaN"``, ``"Infinity"`` or ``"-Infinity"``.
Every entry then passes the rules of :func:`services.logs.ingest.validate`.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator
from typing import Any

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.common.v1 import common_pb2

from services.logs.ingest import (
    Batch,
    EntryProblem,
    Fields,
    metadata_json,
    strings_json,
    validate,
)
from services.logs.levels import NAMES, parse_level

__all__ = ["RESERVED", "count_records", "read_export"]

#: Top-level metadata keys the mapping writes; record attributes never replace them.
RESERVED = frozenset({"resource", "scope", "trace_id", "span_id", "event_name",
                      "severity_text"})
_SERVICE_NAME = "service.name"
#: Where attributes go whose place is taken (see the module docstring).
_OVERFLOW = "attributes"


def _value(value: common_pb2.AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "double_value":
        number = value.double_value
        if math.isfinite(number):
            return number
        return "NaN" if math.isnan(number) else "Infinity" if number > 0 else "-Infinity"
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return None


def _attributes(pairs, reserved: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Attribute pairs as a dict, keys split on dots (see the module docstring)."""
    result: dict[str, Any] = {}
    for pair in pairs:
        key, value = pair.key, pair.value
        # Most attributes are a plain key with a string: placed without the general walk.
        text = value.string_value
        if text and "." not in key and key not in reserved and key != _OVERFLOW \
                and type(result.get(key)) is not dict:
            result[key] = text
        else:
            _place(result, key, text if text else _value(value), reserved)
    return result


def _place(target: dict[str, Any], key: str, value: Any, reserved: frozenset[str]) -> None:
    parts = key.split(".")
    if parts[0] not in reserved and parts[0] != _OVERFLOW and all(parts):
        node = target
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if type(child) is not dict:
                break
            node = child
        else:
            if type(node.get(parts[-1])) is not dict:
                node[parts[-1]] = value
                return
    target.setdefault(_OVERFLOW, {})[key] = value


def _hex_id(raw: bytes, name: str, size: int) -> str | None:
    if not raw:
        return None
    if len(raw) != size:
        raise EntryProblem(f"{name} must be {size} bytes, got {len(raw)}")
    return raw.hex() if raw.count(0) != size else None


def _message(body: common_pb2.AnyValue) -> str:
    text = body.string_value
    if text:
        return text
    kind = body.WhichOneof("value")
    if kind is None or kind == "string_value":
        return ""
    return json.dumps(_value(body), ensure_ascii=False, separators=(",", ":"))


#: Stored level names by OpenTelemetry severity number (0, unspecified, reads the text).
_BY_NUMBER = (None, *(NAMES[parse_level(f"otel:{n}")] for n in range(1, 25)))


def _level(number: int, text: str) -> tuple[str, str | None]:
    """The stored level's name, and the severity text to keep when it was unreadable."""
    if 0 < number < len(_BY_NUMBER):
        return _BY_NUMBER[number], None
    if text:
        level = parse_level(text)
        return (NAMES[level], None) if level is not None else ("info", text)
    return "info", None


#: Keys a record attribute cannot take as they are (see the module docstring).
_NOT_PLAIN = RESERVED | {_OVERFLOW}


def _plain(pairs) -> list[tuple[str, str]] | None:
    """The attributes as (key, text) pairs when each is a string under a key of its own,
    with no dot and not reserved, as most are; else None (the general way)."""
    plain = []
    for pair in pairs:
        key, text = pair.key, pair.value.string_value
        if not text or "." in key or key in _NOT_PLAIN:
            return None
        plain.append((key, text))
    if len(plain) > 1 and len({key for key, _ in plain}) < len(plain):
        return None
    return plain


def _fields(record, service: str, shared: str | None) -> Fields:
    """One record's fields for the rules; ``shared`` is the resource and scope metadata,
    as JSON members written once for all the records of a scope."""
    own: list[tuple[str, str]] = []
    if record.trace_id:
        trace_id = _hex_id(record.trace_id, "trace_id", 16)
        if trace_id:
            own.append(("trace_id", trace_id))
    if record.span_id:
        span_id = _hex_id(record.span_id, "span_id", 8)
        if span_id:
            own.append(("span_id", span_id))
    message = _message(record.body)
    event_name = record.event_name
    if event_name:
        if message:
            own.append(("event_name", event_name))
        else:
            message = event_name
    level, unread = _level(record.severity_number, record.severity_text)
    if unread:
        own.append(("severity_text", unread))
    pairs = record.attributes
    plain = _plain(pairs) if pairs else []
    if plain is not None:
        metadata = strings_json(plain + own, shared)
    else:
        attributes = _attributes(pairs, RESERVED)
        exception = attributes.get("exception")
        if exception is not None and "error_type" not in attributes \
                and type(exception) is dict and type(exception.get("type")) is str:
            attributes["error_type"] = exception["type"]
        attributes.update(own)
        metadata = metadata_json(attributes, shared)
    return (record.time_unix_nano or record.observed_time_unix_nano or None, level, service,
            message, metadata)


def _scope(scope: common_pb2.InstrumentationScope) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if scope.name:
        fields["name"] = scope.name
    if scope.version:
        fields["version"] = scope.version
    if scope.attributes:
        fields["attributes"] = _attributes(scope.attributes)
    return fields


def count_records(request: logs_service_pb2.ExportLogsServiceRequest) -> int:
    """Log records in ``request``."""
    return sum(len(scope.log_records) for resource in request.resource_logs
               for scope in resource.scope_logs)


def _records(request: logs_service_pb2.ExportLogsServiceRequest
             ) -> Iterator[Fields | EntryProblem]:
    """Each log record's fields, or what is wrong with it, in order."""
    for resource_logs in request.resource_logs:
        service, others = "unknown", []
        for pair in resource_logs.resource.attributes:
            if pair.key == _SERVICE_NAME and pair.value.string_value.strip():
                service = pair.value.string_value
            else:
                others.append(pair)
        resource = _attributes(others)
        for scope_logs in resource_logs.scope_logs:
            members: dict[str, Any] = {}
            if resource:
                members["resource"] = resource
            scope = _scope(scope_logs.scope)
            if scope:
                members["scope"] = scope
            try:
                shared = metadata_json(members)[1:-1] if members else None
            except EntryProblem as exc:
                problem = EntryProblem(f"the resource or scope attributes: {exc}")
                for _ in scope_logs.log_records:
                    yield problem
                continue
            for record in scope_logs.log_records:
                try:
                    yield _fields(record, service, shared)
                except EntryProblem as exc:
                    yield exc


def read_export(request: logs_service_pb2.ExportLogsServiceRequest,
                now: int | None = None) -> Batch:
    """Entries for the valid records; an error per invalid one, ``index`` counting all records."""
    return validate(_records(request), now)
