"""Decoded JSON values checked against the proto fields they fill, with what to fix.

One statement of how a JSON value becomes a field's value (strings, numbers in
range, enums, base64, RFC 3339 or Unix-seconds timestamps) and of the messages
that refuse one: the gateway's transcoding (``gateway.convert``) and the services
that parse their own JSON ingest bodies both use it, so a field is read the same
way whichever path it came by.
"""

from __future__ import annotations

import base64
import binascii
import functools
import math
import re
from datetime import datetime
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from botmon.runtime.errors import InvalidArgument

__all__ = [
    "INT_RANGES",
    "array_member",
    "bad_field",
    "describe",
    "not_an_object",
    "object_item",
    "parse_timestamp",
    "member_names",
    "scalar",
    "unknown_field",
]

_T = FieldDescriptor
#: Each integer field type's (lowest, highest) value.
INT_RANGES = {
    _T.TYPE_INT32: (-(2**31), 2**31 - 1), _T.TYPE_SINT32: (-(2**31), 2**31 - 1),
    _T.TYPE_SFIXED32: (-(2**31), 2**31 - 1), _T.TYPE_UINT32: (0, 2**32 - 1),
    _T.TYPE_FIXED32: (0, 2**32 - 1), _T.TYPE_INT64: (-(2**63), 2**63 - 1),
    _T.TYPE_SINT64: (-(2**63), 2**63 - 1), _T.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    _T.TYPE_UINT64: (0, 2**64 - 1), _T.TYPE_FIXED64: (0, 2**64 - 1),
}
_FLOAT_MAX = 3.4028234663852886e38
# Timestamps allowed by protobuf: 0001-01-01 to 9999-12-31.
_TS_MIN, _TS_MAX = -62135596800, 253402300799
_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", re.ASCII)
_SECONDS = re.compile(r"-?\d+(\.\d+)?")
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")


def describe(value: Any) -> str:
    """What a decoded JSON value is, for a message: ``the string 'x'``, ``an array``, …"""
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
    """What a field takes, for a message: ``a string``, ``a whole number from 0 to 255``, …"""
    if fd.type == _T.TYPE_MESSAGE:
        return fd.message_type.full_name
    if fd.type == _T.TYPE_ENUM:
        return "one of " + ", ".join(v.name for v in fd.enum_type.values)
    names = {_T.TYPE_DOUBLE: "a number", _T.TYPE_FLOAT: "a number", _T.TYPE_BOOL: "true or false",
             _T.TYPE_STRING: "a string", _T.TYPE_BYTES: "a base64 string"}
    if fd.type in names:
        return names[fd.type]
    low, high = INT_RANGES[fd.type]
    return f"a whole number from {low} to {high}"


def bad_field(path: str, what: str) -> InvalidArgument:
    """``field 'path': what`` as the error of that field."""
    return InvalidArgument(f"field {path!r}: {what}", field=path)


def not_an_object(path: str, value: Any) -> InvalidArgument:
    """A value where an object (a message) belongs; ``path`` empty for the body itself."""
    return InvalidArgument(f"{'field ' + repr(path) if path else 'the request body'}: "
                           f"expected a JSON object, got {describe(value)}", field=path or None)


def unknown_field(path: str, descriptor: Descriptor) -> InvalidArgument:
    """A member that names no field of ``descriptor``."""
    known = ", ".join(f.name for f in descriptor.fields)
    return bad_field(path, f"unknown field; known fields are: {known}")


def member_names(descriptor: Descriptor) -> dict[str, str]:
    """The member names an object of ``descriptor`` takes (JSON and proto names) -> the
    field's proto name."""
    return {**{f.json_name: f.name for f in descriptor.fields},
            **{f.name: f.name for f in descriptor.fields}}


def array_member(document: Any, descriptor: Descriptor) -> list:
    """The array of a request body whose message (``descriptor``) has one repeated field,
    e.g. ``{"logs": […]}``: absent is empty; any other member or shape is refused."""
    if type(document) is not dict:
        raise not_an_object("", document)
    (field,) = descriptor.fields
    items = None
    for key, value in document.items():
        if key != field.name:
            raise unknown_field(key, descriptor)
        items = value
    if items is None:
        return []
    if type(items) is not list:
        raise bad_field(field.name, f"expected an array, got {describe(items)}")
    return items


def object_item(item: Any, path: str) -> dict:
    """An element of an array of messages, which must be an object."""
    if type(item) is not dict:
        if item is None:
            raise bad_field(path, "null is not allowed in this array")
        raise not_an_object(path, item)
    return item


def parse_timestamp(value: Any, path: str) -> tuple[int, int]:
    """RFC 3339 text or Unix seconds (number or numeric text) -> (seconds, nanos)."""
    kind = type(value)
    if (kind is float or kind is int) and _TS_MIN <= value <= _TS_MAX:
        seconds = math.floor(value)
        return int(seconds), int(round((value - seconds) * 1e9)) % 1_000_000_000
    if kind is str and value[-1:] == "Z":
        # The form clients mostly send, read without the general parse; the lines of a
        # batch share their seconds, so each second's date is read once.
        seconds = _utc_seconds(value[:19])
        frac = value[19:-1]
        if seconds is not None and (not frac or (
                frac[0] == "." and 1 < len(frac) <= 10 and frac.isascii()
                and frac[1:].isdigit())):
            return seconds, int((frac[1:] + "000000000")[:9]) if frac else 0
    if isinstance(value, bool) or value is None or isinstance(value, list | dict):
        raise bad_field(path, f"expected an RFC 3339 time or Unix seconds, got {describe(value)}")
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text) if _SECONDS.fullmatch(text) else text
        except ValueError:
            value = text
    if isinstance(value, int | float):
        if not math.isfinite(value) or not _TS_MIN <= value <= _TS_MAX:
            raise bad_field(path, f"Unix seconds out of range: {value!r}")
        seconds = math.floor(value)
        return int(seconds), int(round((value - seconds) * 1e9)) % 1_000_000_000
    match = _RFC3339.match(value)
    if not match:
        raise bad_field(path, f"expected an RFC 3339 time like 2024-01-15T10:00:00Z or Unix "
                              f"seconds, got {value!r}")
    frac, zone = match.group(7) or "", match.group(8)
    try:
        seconds = _epoch_seconds(value[:19], zone)
    except ValueError:
        raise bad_field(path, f"not a valid date or time: {value!r}") from None
    nanos = int((frac[1:] + "000000000")[:9]) if frac else 0
    return seconds, nanos


@functools.lru_cache(maxsize=4096)
def _utc_seconds(local: str) -> int | None:
    """Unix seconds of ``YYYY-MM-DDTHH:MM:SS`` in UTC; None for any other text."""
    if not _UTC.fullmatch(local):
        return None
    try:
        return _epoch_seconds(local, "Z")
    except ValueError:
        return None


@functools.lru_cache(maxsize=4096)
def _epoch_seconds(local: str, zone: str) -> int:
    """Unix seconds of ``YYYY-MM-DDTHH:MM:SS`` in ``zone``; lines of a batch share seconds."""
    return int(datetime.fromisoformat(local.replace("t", "T").replace(" ", "T")
                                      + ("+00:00" if zone in "Zz" else zone)).timestamp())


def scalar(fd: FieldDescriptor, value: Any, path: str, *, from_text: bool = False) -> Any:
    """Check and convert one scalar; ``from_text`` accepts strings for every type (query)."""
    t = fd.type
    if t == _T.TYPE_STRING:
        if not isinstance(value, str):
            raise bad_field(path, f"expected a string, got {describe(value)}")
        return value
    if t == _T.TYPE_BOOL:
        if isinstance(value, bool):
            return value
        if from_text and isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
        raise bad_field(path, f"expected true or false, got {describe(value)}")
    if t == _T.TYPE_ENUM:
        return _enum(fd, value, path)
    if t == _T.TYPE_BYTES:
        if not isinstance(value, str):
            raise bad_field(path, f"expected a base64 string, got {describe(value)}")
        try:
            return base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_"
                                    if "-" in value or "_" in value else None, validate=True)
        except (binascii.Error, ValueError):
            raise bad_field(path, "expected base64 data") from None
    if t in (_T.TYPE_DOUBLE, _T.TYPE_FLOAT):
        return _float(fd, value, path)
    return _integer(fd, value, path)


def _enum(fd: FieldDescriptor, value: Any, path: str) -> int:
    values = fd.enum_type.values
    if isinstance(value, int) and not isinstance(value, bool):
        if fd.enum_type.values_by_number.get(value) is None:
            raise bad_field(path, f"unknown value {value}; expected one of "
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
    raise bad_field(path, f"unknown value {describe(value)}; expected one of "
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
            raise bad_field(path, f"expected a number, got {describe(value)}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_field(path, f"expected a number, got {describe(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise bad_field(path, "number out of range") from None
    if fd.type == _T.TYPE_FLOAT and math.isfinite(number) and abs(number) > _FLOAT_MAX:
        raise bad_field(path, f"number out of range for a 32-bit float: {value!r}")
    return number


def _integer(fd: FieldDescriptor, value: Any, path: str) -> int:
    low, high = INT_RANGES[fd.type]
    if isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(r"-?\d+(\.0*)?|-?\d+(\.\d+)?[eE][+-]?\d+", text):
            raise bad_field(path, f"expected {_type_name(fd)}, got {describe(value)}")
        value = int(text.split(".")[0]) if "e" not in text.lower() else float(text)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_field(path, f"expected {_type_name(fd)}, got {describe(value)}")
    if isinstance(value, float):
        if not math.isfinite(value) or value != math.floor(value):
            raise bad_field(path, f"expected {_type_name(fd)}, got {describe(value)}")
        value = int(value)
    if not low <= value <= high:
        raise bad_field(path, f"out of range: expected {_type_name(fd)}, got {value}")
    return value
