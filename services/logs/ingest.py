"""Validation of written entries: proto in, new entries and per-entry errors out.

Limits: ``service`` 1-128 characters; ``message`` 1 byte to 32 KiB (UTF-8);
``metadata`` a JSON object of at most 16 KiB serialised, nesting objects and
arrays at most 20 levels deep (the object itself is the first), so that every
entry can be read back over gRPC, whose decoders stop at 100 message levels
(three per level of a Struct); ``timestamp`` (when
set) between 2000-01-01 and one day after receipt, since anything else is a
unit mistake (milliseconds sent as seconds) rather than a real time.
"""

from __future__ import annotations

import json
import json.encoder
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import struct_pb2

from botmon.logs.v1 import log_entry_pb2
from botmon.runtime.json_form import as_struct, struct_number
from services.logs.levels import ACCEPTED, LEVELS, parse_level
from services.logs.row import ROW_OVERHEAD, NewEntry

__all__ = [
    "MAX_BATCH",
    "MAX_MESSAGE_BYTES",
    "MAX_METADATA_BYTES",
    "MAX_METADATA_DEPTH",
    "MAX_PUSH_LINES",
    "Batch",
    "EntryProblem",
    "Fields",
    "Rejected",
    "check_batch_size",
    "make_entry",
    "metadata_json",
    "object_json",
    "strings_json",
    "struct_to_python",
    "validate",
    "validate_entries",
]

MAX_BATCH = 10_000
MAX_MESSAGE_BYTES = 32 * 1024
MAX_METADATA_BYTES = 16 * 1024
MAX_METADATA_DEPTH = 20
#: Lines of one push from a log shipper (Loki, OTLP), which batch more than clients do.
MAX_PUSH_LINES = 100_000
MAX_SERVICE_CHARS = 128
MIN_TS = 946_684_800 * 10**9  # 2000-01-01T00:00:00Z
FUTURE_SLACK_NS = 86_400 * 10**9


def _not_json(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON")


# The C encoder, built once: JSONEncoder.encode builds a new one per call, which
# is most of the cost of encoding a small metadata object (3.8 µs against 1.5 µs).
_C_ENCODER = json.encoder.c_make_encoder and json.encoder.c_make_encoder(
    None, _not_json, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, False)
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_quote = json.encoder.encode_basestring_ascii
_ONLY_STRINGS = {str}


class EntryProblem(ValueError):
    """An entry cannot be stored; the message says what to fix."""


#: One entry as a decoder read it, before the rules: time in Unix nanoseconds (None:
#: the time of receipt), level, service, message, metadata as stored JSON text or None.
Fields = tuple[int | None, str, str, str, str | None]


@dataclass(frozen=True)
class Rejected:
    """An entry that was not stored: its position, what to fix, and its batch or stream."""

    index: int
    message: str
    batch: int = 0


@dataclass
class Batch:
    """Entries that passed validation, and those that did not."""

    entries: list[NewEntry] = field(default_factory=list)
    errors: list[Rejected] = field(default_factory=list)


def _value(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        # Struct numbers are doubles; keep integers integers so 150 stays 150.
        return struct_number(value.number_value)
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return struct_to_python(value.struct_value)
    if kind == "list_value":
        return [_value(v) for v in value.list_value.values]
    return None


def struct_to_python(struct: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct as a plain dict (integral numbers as ints)."""
    return _fields_to_python(struct.fields)


def _fields_to_python(fields) -> dict[str, Any]:
    """A Struct's ``fields`` map as a plain dict."""
    result = {}
    # Keys then lookups: the map's items() goes through a slow pure-Python view.
    # Strings (most metadata values) are read inline, saving a call per value: a
    # non-empty string_value can only be a string, so only "" needs WhichOneof.
    for key in fields:
        value = fields[key]
        text = value.string_value
        result[key] = (text if text or value.WhichOneof("kind") == "string_value"
                       else _value(value))
    return result


def _deeper_than(value: dict | list, levels: int) -> bool:
    if levels < 1:
        return True
    children = value.values() if type(value) is dict else value
    return any(_deeper_than(child, levels - 1) for child in children
               if type(child) is dict or type(child) is list)


def metadata_json(metadata: dict[str, Any], shared: str | None = None) -> str | None:
    """``metadata`` as stored (compact JSON), or None when empty; raises when it is too
    large, deep or not JSON.

    ``shared`` is more members already written this way (``"k":v,…``, checked when they
    were written), added after ``metadata``'s own: what many entries have in common is
    encoded once.
    """
    if not metadata:
        return _within_limit("{" + shared + "}") if shared else None
    _check_depth(metadata)
    text = _encode(metadata)
    if shared:
        text = text[:-1] + "," + shared + "}"
    return _within_limit(text)


def strings_json(pairs: Iterable[tuple[str, str]], shared: str | None = None) -> str | None:
    """:func:`metadata_json` of metadata whose values are all strings, given as pairs with
    distinct keys: the same text, written without the dict and the depth check."""
    parts = [f"{_quote(key)}:{_quote(text)}" for key, text in pairs]
    if shared:
        parts.append(shared)
    return _within_limit("{" + ",".join(parts) + "}") if parts else None


def object_json(metadata: dict[str, Any]) -> str | None:
    """:func:`metadata_json` of metadata decoded from JSON text, stored as the same object
    sent as a ``Struct`` is (:func:`as_struct`)."""
    if not metadata:
        return None
    # Mostly flat strings, which a Struct holds as they are: encoded at once.
    if {*map(type, metadata.values())} == _ONLY_STRINGS:
        return _within_limit(_encode(metadata))
    _check_depth(metadata)
    return _within_limit(_encode(as_struct(metadata)))


def _check_depth(metadata: dict[str, Any]) -> None:
    if any(type(v) is dict or type(v) is list for v in metadata.values()) and \
            _deeper_than(metadata, MAX_METADATA_DEPTH):
        raise EntryProblem(f"metadata nests objects and arrays more than {MAX_METADATA_DEPTH} "
                           "levels deep; flatten it")


def _encode(metadata: dict[str, Any]) -> str:
    try:
        return "".join(_C_ENCODER(metadata, 0)) if _C_ENCODER else _ENCODER.encode(metadata)
    except ValueError as exc:
        raise EntryProblem(f"metadata is not valid JSON: {exc}") from None


def _fields_json(fields) -> str:
    """A Struct's ``fields`` map as stored JSON text (as :func:`metadata_json` writes it).

    Metadata is mostly flat strings; those are written straight from the map, without
    the dict in between, and any other value takes the general way.
    """
    pairs = []
    for key in fields:
        text = fields[key].string_value
        if not text:
            return metadata_json(_fields_to_python(fields))
        pairs.append((key, text))
    return strings_json(pairs)


def _within_limit(text: str) -> str:
    if len(text) > MAX_METADATA_BYTES:
        raise EntryProblem(f"metadata is {len(text)} bytes serialised; the limit is "
                           f"{MAX_METADATA_BYTES} (16 KiB): move large values elsewhere")
    return text


def make_entry(ts: int, level: str, service: str, message: str, metadata: str | None,
               now: int) -> NewEntry:
    """Validate one entry's fields (metadata already JSON text); raises :class:`EntryProblem`."""
    stored_level = LEVELS.get(level)
    if stored_level is None:
        if not level:
            raise EntryProblem(f"level is required: one of {ACCEPTED}")
        stored_level = parse_level(level)
        if stored_level is None:
            raise EntryProblem(f"level {level[:40]!r} is not a level: use one of {ACCEPTED}")
    if not service or service[0].isspace() or service[-1].isspace():
        service = service.strip()
        if not service:
            raise EntryProblem("service is required: name the service that logged the entry")
    if len(service) > MAX_SERVICE_CHARS:
        raise EntryProblem(f"service is {len(service)} characters; the limit is "
                           f"{MAX_SERVICE_CHARS}")
    if not message:
        raise EntryProblem("message is required and must not be empty")
    size = len(message) if message.isascii() else len(message.encode())
    if size > MAX_MESSAGE_BYTES:
        raise EntryProblem(f"message is {size} bytes; the limit is "
                           f"{MAX_MESSAGE_BYTES} (32 KiB): split or truncate it")
    if ts < MIN_TS or ts > now + FUTURE_SLACK_NS:
        raise EntryProblem("timestamp must lie between 2000-01-01T00:00:00Z and one day "
                           "from now (was it sent in milliseconds instead of seconds?)")
    if metadata:
        size += len(metadata)
    return (ts, stored_level, service, message, metadata or None,
            size + ROW_OVERHEAD + len(service))


def validate(items: Iterable[Fields | EntryProblem], now: int | None = None) -> Batch:
    """New entries for the valid items and an error for each invalid one (partial success).

    The one statement of the rules, whichever way the entries came (protobuf, JSON):
    an item the decoder already refused is an :class:`EntryProblem`. An entry that is
    plainly valid (a canonical level, an ASCII message, nothing to trim or map) is
    accepted inline; any other goes through :func:`make_entry`, which maps what it can
    and says what to fix otherwise. Ingest spends most of its time here, so the common
    case costs no extra call.
    """
    now = time.time_ns() if now is None else now
    latest = now + FUTURE_SLACK_NS
    levels = LEVELS
    batch = Batch()
    append = batch.entries.append
    for index, item in enumerate(items):
        if type(item) is not tuple:
            batch.errors.append(Rejected(index, str(item)))
            continue
        ts, level, service, message, metadata = item
        if ts is None:
            ts = now
        stored_level = levels.get(level)
        if (stored_level is not None and MIN_TS <= ts <= latest and message
                and message.isascii() and len(message) <= MAX_MESSAGE_BYTES and service
                and len(service) <= MAX_SERVICE_CHARS and not service[0].isspace()
                and not service[-1].isspace()):
            append((ts, stored_level, service, message, metadata,
                    len(message) + (len(metadata) if metadata else 0) + ROW_OVERHEAD
                    + len(service)))
            continue
        try:
            append(make_entry(ts, level, service, message, metadata, now))
        except EntryProblem as exc:
            batch.errors.append(Rejected(index, str(exc)))
    return batch


def _proto_fields(entries: Iterable[log_entry_pb2.LogEntry]) -> Iterator[Fields | EntryProblem]:
    for entry in entries:
        # Unset means "now"; one set to zero is 1970 and refused by the rules. Only a
        # zero reading needs HasField to tell the two apart.
        stamp = entry.timestamp
        seconds, nanos = stamp.seconds, stamp.nanos
        if not 0 <= nanos < 1_000_000_000:
            yield EntryProblem("timestamp nanos must be between 0 and 999999999")
            continue
        ts = seconds * 1_000_000_000 + nanos \
            if seconds or nanos or entry.HasField("timestamp") else None
        # Serialised here, once: the exact size for the limit and the text the stores
        # write. The map is read once: each access builds a new wrapper.
        fields = entry.metadata.fields
        try:
            metadata = _fields_json(fields) if fields else None
        except EntryProblem as exc:
            yield exc
            continue
        yield ts, entry.level, entry.service, entry.message, metadata


def validate_entries(entries: Iterable[log_entry_pb2.LogEntry], now: int | None = None) -> Batch:
    """:func:`validate` of protobuf entries."""
    return validate(_proto_fields(entries), now)


def check_batch_size(count: int, what: str = "logs") -> str | None:
    """What is wrong with a batch of ``count`` entries, or None."""
    if count == 0:
        return f"{what} is empty: send between 1 and {MAX_BATCH} entries"
    if count > MAX_BATCH:
        return f"{what} has {count} entries; send at most {MAX_BATCH} per batch"
    return None
