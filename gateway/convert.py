"""The one proto <-> JSON module of the gateway.

Requests: JSON bodies and query-string values are bound to request messages by
walking their descriptors, so every mistake becomes an ``InvalidArgument`` whose
message names the field and says what to fix. Responses: messages become JSON
with the proto field names, every field present (defaults included, unset
messages and ``optional`` scalars as ``null``), 64-bit integers as JSON numbers,
Timestamps and Struct numbers as :mod:`botmon.runtime.json_form` writes them and
Structs as plain JSON. A ``google.api.HttpBody`` field is a reply's HTTP form (its
bytes are the response body), never part of its JSON (:func:`json_fields`).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from botmon.runtime.errors import InvalidArgument
from botmon.runtime.json_form import rfc3339, struct_number

__all__ = [
    "assign_text",
    "json_fields",
    "json_to_message",
    "message_to_json",
    "parse_timestamp",
]

_T = FieldDescriptor
_INT_RANGES = {
    _T.TYPE_INT32: (-(2**31), 2**31 - 1), _T.TYPE_SINT32: (-(2**31), 2**31 - 1),
    _T.TYPE_SFIXED32: (-(2**31), 2**31 - 1), _T.TYPE_UINT32: (0, 2**32 - 1),
    _T.TYPE_FIXED32: (0, 2**32 - 1), _T.TYPE_INT64: (-(2**63), 2**63 - 1),
    _T.TYPE_SINT64: (-(2**63), 2**63 - 1), _T.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    _T.TYPE_UINT64: (0, 2**64 - 1), _T.TYPE_FIXED64: (0, 2**64 - 1),
}
_FLOAT_MAX = 3.4028234663852886e38
_WRAPPERS = {f"google.protobuf.{n}Value" for n in
             ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")}
_JSON_TYPES = {"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"}
# Timestamps allowed by protobuf: 0001-01-01 to 9999-12-31.
_TS_MIN, _TS_MAX = -62135596800, 253402300799


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r}" if len(value) <= 40 else "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _type_name(fd: FieldDescriptor) -> str:
    if fd.type == _T.TYPE_MESSAGE:
        return fd.message_type.full_name
    if fd.type == _T.TYPE_ENUM:
        return "one of " + ", ".join(v.name for v in fd.enum_type.values)
    names = {_T.TYPE_DOUBLE: "a number", _T.TYPE_FLOAT: "a number", _T.TYPE_BOOL: "true or false",
             _T.TYPE_STRING: "a string", _T.TYPE_BYTES: "a base64 string"}
    if fd.type in names:
        return names[fd.type]
    low, high = _INT_RANGES[fd.type]
    return f"a whole number from {low} to {high}"


def _bad(path: str, what: str) -> InvalidArgument:
    return InvalidArgument(f"field {path!r}: {what}", field=path)


# ---------------------------------------------------------------- timestamps

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")


def parse_timestamp(value: Any, path: str) -> tuple[int, int]:
    """RFC 3339 text or Unix seconds (number or numeric text) -> (seconds, nanos)."""
    if isinstance(value, bool) or value is None or isinstance(value, list | dict):
        raise _bad(path, f"expected an RFC 3339 time or Unix seconds, got {_kind(value)}")
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text) if re.fullmatch(r"-?\d+(\.\d+)?", text) else text
        except ValueError:
            value = text
    if isinstance(value, int | float):
        if not math.isfinite(value) or not _TS_MIN <= value <= _TS_MAX:
            raise _bad(path, f"Unix seconds out of range: {value!r}")
        seconds = math.floor(value)
        return int(seconds), int(round((value - seconds) * 1e9)) % 1_000_000_000
    match = _RFC3339.match(value)
    if not match:
        raise _bad(path, f"expected an RFC 3339 time like 2024-01-15T10:00:00Z or Unix "
                         f"seconds, got {value!r}")
    frac, zone = match.group(7) or "", match.group(8)
    try:
        base = datetime.fromisoformat(
            value[:19].replace("t", "T").replace(" ", "T")
            + ("+00:00" if zone in "Zz" else zone))
    except ValueError:
        raise _bad(path, f"not a valid date or time: {value!r}") from None
    nanos = int((frac[1:] + "000000000")[:9]) if frac else 0
    return int(base.timestamp()), nanos


def _format_timestamp(msg: Message) -> str:
    return rfc3339(msg.seconds, msg.nanos)


# ---------------------------------------------------------------- JSON -> message

def json_to_message(data: Any, message: Message, path: str = "") -> Message:
    """Fill ``message`` from the decoded JSON value ``data``; return it."""
    if message.DESCRIPTOR.full_name in _SPECIAL:
        _parse_special(message, data, path or "body")
        return message
    if not isinstance(data, dict):
        raise InvalidArgument(f"{'field ' + repr(path) if path else 'the request body'}: "
                              f"expected a JSON object, got {_kind(data)}", field=path or None)
    descriptor = message.DESCRIPTOR
    for key, value in data.items():
        fd = _lookup(descriptor, key)
        where = f"{path}.{key}" if path else key
        if fd is None:
            known = ", ".join(f.name for f in descriptor.fields)
            raise _bad(where, f"unknown field; known fields are: {known}")
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
            raise _bad(path, f"expected a JSON object of key/value pairs, got {_kind(value)}")
        target = getattr(message, fd.name)
        key_fd = fd.message_type.fields_by_name["key"]
        value_fd = fd.message_type.fields_by_name["value"]
        for k, v in value.items():
            key = _scalar(key_fd, k, f"{path}.{k}", from_text=True)
            if value_fd.type == _T.TYPE_MESSAGE:
                json_to_message(v, target[key], f"{path}.{k}")
            else:
                target[key] = _scalar(value_fd, v, f"{path}.{k}")
        return
    if _is_repeated(fd):
        if not isinstance(value, list):
            raise _bad(path, f"expected an array, got {_kind(value)}")
        target = getattr(message, fd.name)
        for i, item in enumerate(value):
            where = f"{path}[{i}]"
            if fd.type == _T.TYPE_MESSAGE:
                if item is None and fd.message_type.full_name != "google.protobuf.Value":
                    raise _bad(where, "null is not allowed in this array")
                json_to_message(item, target.add(), where)
            else:
                target.append(_scalar(fd, item, where))
        return
    if fd.type == _T.TYPE_MESSAGE:
        json_to_message(value, getattr(message, fd.name), path)
        return
    setattr(message, fd.name, _scalar(fd, value, path))


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
            raise _bad(path, f"expected a duration like \"1.5s\" or seconds, got {_kind(data)}")
        message.FromJsonString(data.strip())
        return
    if name in _WRAPPERS:
        _assign(message, message.DESCRIPTOR.fields_by_name["value"], data, path)
        return
    try:
        json_format.ParseDict(data, message)
    except json_format.ParseError as exc:
        raise _bad(path, str(exc)) from None


def _scalar(fd: FieldDescriptor, value: Any, path: str, *, from_text: bool = False) -> Any:
    """Check and convert one scalar; ``from_text`` accepts strings for every type (query)."""
    t = fd.type
    if t == _T.TYPE_STRING:
        if not isinstance(value, str):
            raise _bad(path, f"expected a string, got {_kind(value)}")
        return value
    if t == _T.TYPE_BOOL:
        if isinstance(value, bool):
            return value
        if from_text and isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
        raise _bad(path, f"expected true or false, got {_kind(value)}")
    if t == _T.TYPE_ENUM:
        return _enum(fd, value, path)
    if t == _T.TYPE_BYTES:
        if not isinstance(value, str):
            raise _bad(path, f"expected a base64 string, got {_kind(value)}")
        try:
            return base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_"
                                    if "-" in value or "_" in value else None, validate=True)
        except (binascii.Error, ValueError):
            raise _bad(path, "expected base64 data") from None
    if t in (_T.TYPE_DOUBLE, _T.TYPE_FLOAT):
        return _float(fd, value, path)
    return _integer(fd, value, path)


def _enum(fd: FieldDescriptor, value: Any, path: str) -> int:
    values = fd.enum_type.values
    if isinstance(value, int) and not isinstance(value, bool):
        if fd.enum_type.values_by_number.get(value) is None:
            raise _bad(path, f"unknown value {value}; expected one of "
                             + ", ".join(v.name for v in values))
        return value
    if isinstance(value, str):
        wanted = value.strip().upper()
        for v in values:
            # Accept "CRITICAL" for SEVERITY_CRITICAL, as clients write the short name.
            if v.name == wanted or v.name.endswith("_" + wanted):
                return v.number
        if wanted.lstrip("-").isdecimal():
            return _enum(fd, int(wanted), path)
    raise _bad(path, f"unknown value {_kind(value)}; expected one of "
                     + ", ".join(v.name for v in values))


def _float(fd: FieldDescriptor, value: Any, path: str) -> float:
    if isinstance(value, str):
        text = value.strip()
        special = {"nan": math.nan, "infinity": math.inf, "-infinity": -math.inf}
        if text.lower() in special:
            return special[text.lower()]
        try:
            value = float(text)
        except ValueError:
            raise _bad(path, f"expected a number, got {_kind(value)}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(path, f"expected a number, got {_kind(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise _bad(path, "number out of range") from None
    if fd.type == _T.TYPE_FLOAT and math.isfinite(number) and abs(number) > _FLOAT_MAX:
        raise _bad(path, f"number out of range for a 32-bit float: {value!r}")
    return number


def _integer(fd: FieldDescriptor, value: Any, path: str) -> int:
    low, high = _INT_RANGES[fd.type]
    if isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(r"-?\d+(\.0*)?|-?\d+(\.\d+)?[eE][+-]?\d+", text):
            raise _bad(path, f"expected {_type_name(fd)}, got {_kind(value)}")
        value = int(text.split(".")[0]) if "e" not in text.lower() else float(text)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(path, f"expected {_type_name(fd)}, got {_kind(value)}")
    if isinstance(value, float):
        if not math.isfinite(value) or value != math.floor(value):
            raise _bad(path, f"expected {_type_name(fd)}, got {_kind(value)}")
        value = int(value)
    if not low <= value <= high:
        raise _bad(path, f"out of range: expected {_type_name(fd)}, got {value}")
    return value


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
            raise _bad(path, f"set map entries as {fd.name}.<key>=<value> or "
                             f"{fd.name}[<key>]=<value>")
        value_fd = fd.message_type.fields_by_name["value"]
        if value_fd.type == _T.TYPE_MESSAGE:
            raise _bad(path, "cannot be set from the query string")
        # Map keys may contain dots: everything after the field name is the key.
        key = _scalar(fd.message_type.fields_by_name["key"], ".".join(rest), path,
                      from_text=True)
        getattr(message, fd.name)[key] = _scalar(value_fd, values[-1], path, from_text=True)
        return
    if fd.type == _T.TYPE_MESSAGE:
        name = fd.message_type.full_name
        if _is_repeated(fd) or (not rest and name not in _SPECIAL - _JSON_TYPES):
            raise _bad(path, "cannot be set from the query string; send it in a request body")
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
            _scalar(fd, item.strip(), path, from_text=True) for item in items if item.strip())
        return
    _only_one(values, path)
    setattr(message, fd.name, _scalar(fd, values[0], path, from_text=True))


def _only_one(values: list[str], path: str) -> None:
    if len(values) > 1:
        raise _bad(path, f"given {len(values)} times; give it once")


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
