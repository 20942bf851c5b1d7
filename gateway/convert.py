"""The one proto <-> JSON module of the gateway.

Requests: JSON bodies and query-string values are bound to request messages by
walking their descriptors, so every mistake becomes an ``InvalidArgument`` whose
message names the field and says what to fix; how one value becomes a field's is
:mod:`botmon.runtime.jsonfields`, which the services that parse their own JSON
ingest bodies use too. Responses: messages become JSON
with the proto field names, every field present (defaults included, unset
messages and ``optional`` scalars as ``null``), 64-bit integers as JSON numbers,
Timestamps and Struct numbers as :mod:`botmon.runtime.json_form` writes them and
Structs as plain JSON. A ``google.api.HttpBody`` field is a reply's HTTP form (its
bytes are the response body), never part of its JSON (:func:`json_fields`).
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from botmon.runtime.errors import InvalidArgument
from botmon.runtime.json_form import rfc3339, struct_number
from botmon.runtime.jsonfields import (
    bad_field,
    describe,
    not_an_object,
    parse_timestamp,
    scalar,
    unknown_field,
)

__all__ = [
    "assign_text",
    "json_fields",
    "json_to_message",
    "message_to_json",
]

_T = FieldDescriptor
_WRAPPERS = {f"google.protobuf.{n}Value" for n in
             ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")}
_JSON_TYPES = {"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"}


# ---------------------------------------------------------------- timestamps

def _format_timestamp(msg: Message) -> str:
    return rfc3339(msg.seconds, msg.nanos)


# ---------------------------------------------------------------- JSON -> message

def json_to_message(data: Any, message: Message, path: str = "") -> Message:
    """Fill ``message`` from the decoded JSON value ``data``; return it."""
    if message.DESCRIPTOR.full_name in _SPECIAL:
        _parse_special(message, data, path or "body")
        return message
    if not isinstance(data, dict):
        raise not_an_object(path, data)
    descriptor = message.DESCRIPTOR
    for key, value in data.items():
        fd = _lookup(descriptor, key)
        where = f"{path}.{key}" if path else key
        if fd is None:
            raise unknown_field(where, descriptor)
        if value is None:
            continue
        _assign(message, fd, value, where)
    return message


def _lookup(descriptor: Descriptor, key: str) -> FieldDescriptor | None:
    fd = descriptor.fields_by_name.get(key)
    if fd is None:
        fd = next((f for f in descriptor.fields if f.json_name == key), None)
    return fd


def _is_map(fd: FieldDescriptor) -> bool:
    return fd.type == _T.TYPE_MESSAGE and fd.message_type.GetOptions().map_entry


def _is_repeated(fd: FieldDescriptor) -> bool:
    return fd.is_repeated


def _assign(message: Message, fd: FieldDescriptor, value: Any, path: str) -> None:
    if _is_map(fd):
        if not isinstance(value, dict):
            raise bad_field(path, f"expected a JSON object of key/value pairs, got {describe(value)}")
        target = getattr(message, fd.name)
        key_fd = fd.message_type.fields_by_name["key"]
        value_fd = fd.message_type.fields_by_name["value"]
        for k, v in value.items():
            key = scalar(key_fd, k, f"{path}.{k}", from_text=True)
            if value_fd.type == _T.TYPE_MESSAGE:
                json_to_message(v, target[key], f"{path}.{k}")
            else:
                target[key] = scalar(value_fd, v, f"{path}.{k}")
        return
    if _is_repeated(fd):
        if not isinstance(value, list):
            raise bad_field(path, f"expected an array, got {describe(value)}")
        target = getattr(message, fd.name)
        for i, item in enumerate(value):
            where = f"{path}[{i}]"
            if fd.type == _T.TYPE_MESSAGE:
                if item is None and fd.message_type.full_name != "google.protobuf.Value":
                    raise bad_field(where, "null is not allowed in this array")
                json_to_message(item, target.add(), where)
            else:
                target.append(scalar(fd, item, where))
        return
    if fd.type == _T.TYPE_MESSAGE:
        json_to_message(value, getattr(message, fd.name), path)
        return
    setattr(message, fd.name, scalar(fd, value, path))


_SPECIAL = {"google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask",
            "google.protobuf.Empty", "google.protobuf.Any", *_WRAPPERS, *_JSON_TYPES}


def _parse_special(message: Message, data: Any, path: str) -> None:
    name = message.DESCRIPTOR.full_name
    if name == "google.protobuf.Timestamp":
        message.seconds, message.nanos = parse_timestamp(data, path)
        return
    if name == "google.protobuf.Duration":
        if isinstance(data, int | float) and not isinstance(data, bool):
            data = f"{data}s"
        if not isinstance(data, str) or not re.fullmatch(r"-?\d+(\.\d{1,9})?s", data.strip()):
            raise bad_field(path, f"expected a duration like \"1.5s\" or seconds, got {describe(data)}")
        message.FromJsonString(data.strip())
        return
    if name in _WRAPPERS:
        _assign(message, message.DESCRIPTOR.fields_by_name["value"], data, path)
        return
    try:
        json_format.ParseDict(data, message)
    except json_format.ParseError as exc:
        raise bad_field(path, str(exc)) from None


# ---------------------------------------------------------------- query text -> message

def assign_text(message: Message, parts: list[str], values: list[str], path: str) -> None:
    """Bind query values to the field at ``parts`` (a dotted path, map keys included)."""
    descriptor = message.DESCRIPTOR
    fd = descriptor.fields_by_name.get(parts[0]) or _lookup(descriptor, parts[0])
    if fd is None:
        raise InvalidArgument(f"unknown query parameter {path!r}", field=path)
    rest = parts[1:]
    if _is_map(fd):
        if not rest or not all(rest):
            raise bad_field(path, f"set map entries as {fd.name}.<key>=<value> or "
                             f"{fd.name}[<key>]=<value>")
        value_fd = fd.message_type.fields_by_name["value"]
        if value_fd.type == _T.TYPE_MESSAGE:
            raise bad_field(path, "cannot be set from the query string")
        # Map keys may contain dots: everything after the field name is the key.
        key = scalar(fd.message_type.fields_by_name["key"], ".".join(rest), path,
                      from_text=True)
        getattr(message, fd.name)[key] = scalar(value_fd, values[-1], path, from_text=True)
        return
    if fd.type == _T.TYPE_MESSAGE:
        name = fd.message_type.full_name
        if _is_repeated(fd) or (not rest and name not in _SPECIAL - _JSON_TYPES):
            raise bad_field(path, "cannot be set from the query string; send it in a request body")
        if rest:
            assign_text(getattr(message, fd.name), rest, values, path)
            return
        _only_one(values, path)
        _parse_special(getattr(message, fd.name), values[0], path)
        return
    if rest:
        raise InvalidArgument(f"unknown query parameter {path!r}", field=path)
    if _is_repeated(fd):
        items = [item for v in values for item in (v.split(",") if "," in v else [v])]
        getattr(message, fd.name).extend(
            scalar(fd, item.strip(), path, from_text=True) for item in items if item.strip())
        return
    _only_one(values, path)
    setattr(message, fd.name, scalar(fd, values[0], path, from_text=True))


def _only_one(values: list[str], path: str) -> None:
    if len(values) > 1:
        raise bad_field(path, f"given {len(values)} times; give it once")


# ---------------------------------------------------------------- message -> JSON

def json_fields(descriptor: Descriptor) -> list[FieldDescriptor]:
    """The fields of ``descriptor`` that its JSON form has: all but HttpBody ones."""
    return [fd for fd in descriptor.fields
            if fd.type != _T.TYPE_MESSAGE or fd.message_type.full_name != "google.api.HttpBody"]


def message_to_json(message: Message) -> Any:
    """Render ``message`` as JSON-ready Python values (see the module docstring)."""
    return _renderer(message.DESCRIPTOR)(message)


# Each message type gets a renderer built once from its descriptor, so a response
# costs one closure call per field instead of a descriptor inspection per field.
_RENDERERS: dict[str, Callable[[Message], Any]] = {}


def _renderer(descriptor: Descriptor) -> Callable[[Message], Any]:
    name = descriptor.full_name
    render = _RENDERERS.get(name)
    if render is None:
        render = _RENDERERS[name] = _build_renderer(descriptor)
    return render


def _build_renderer(descriptor: Descriptor) -> Callable[[Message], Any]:
    name = descriptor.full_name
    if name == "google.protobuf.Timestamp":
        return _format_timestamp
    if name == "google.protobuf.Struct":
        return lambda m: {k: _json_value(v) for k, v in m.fields.items()}
    if name == "google.protobuf.ListValue":
        return lambda m: [_json_value(v) for v in m.values]
    if name == "google.protobuf.Value":
        return _json_value
    if name in _WRAPPERS:
        convert = _converter(descriptor.fields_by_name["value"])
        return lambda m: convert(m.value)
    if name in _SPECIAL:
        return lambda m: json_format.MessageToDict(m, preserving_proto_field_name=True)
    fields = []
    for fd in json_fields(descriptor):
        if _is_map(fd):
            convert = _converter(fd.message_type.fields_by_name["value"])
            fields.append((fd.name, "map", convert))
        elif _is_repeated(fd):
            fields.append((fd.name, "list", _converter(fd)))
        else:
            convert = _converter(fd)
            # "raw": a scalar JSON takes as it is (strings, bools, 32-bit ints): no call.
            kind = "optional" if fd.has_presence else "raw" if convert is _same else "plain"
            fields.append((fd.name, kind, convert))

    def render(message: Message) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for field_name, kind, convert in fields:
            value = getattr(message, field_name)
            if kind == "raw":
                out[field_name] = value
            elif kind == "plain":
                out[field_name] = convert(value)
            elif kind == "list":
                out[field_name] = [convert(v) for v in value]
            elif kind == "map":
                out[field_name] = {str(k): convert(v) for k, v in value.items()}
            else:
                out[field_name] = convert(value) if message.HasField(field_name) else None
        return out

    return render


def _same(value: Any) -> Any:
    return value


def _converter(fd: FieldDescriptor) -> Callable[[Any], Any]:
    """How one value of field ``fd`` becomes JSON."""
    t = fd.type
    if t == _T.TYPE_MESSAGE:
        return _renderer(fd.message_type)
    if t == _T.TYPE_ENUM:
        names = {v.number: v.name for v in fd.enum_type.values}
        return lambda value: names.get(value, value)
    if t == _T.TYPE_BYTES:
        return lambda value: base64.b64encode(value).decode("ascii")
    if t == _T.TYPE_DOUBLE:
        return _double
    if t == _T.TYPE_FLOAT:
        return lambda value: _double(value) if not math.isfinite(value) \
            else float(f"{value:.7g}")
    return _same


def _double(value: float) -> Any:
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _json_value(value: Message) -> Any:
    """A ``google.protobuf.Value`` as plain JSON (numbers as :func:`struct_number` reads them)."""
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        return _double(struct_number(value.number_value))
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return {k: _json_value(v) for k, v in value.struct_value.fields.items()}
    if kind == "list_value":
        return [_json_value(v) for v in value.list_value.values]
    return None
