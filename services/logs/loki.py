"""Loki's push formats (``POST /loki/api/v1/push``, JSON or protobuf) turned into entries.

Per stream: ``service`` comes from the ``service`` label, else ``job``, else
``service_name``, else ``"unknown"``; every other label goes into metadata.
Each value is ``["<unix ns>", "<line>"]`` or ``["<unix ns>", "<line>",
{structured metadata}]``, the third element merged into metadata (over the
labels). The protobuf body (:mod:`botmon.loki.v1.push_pb2`) carries each
stream's labels as a PromQL-style string, parsed strictly by
:mod:`services.logs.labels` (one that does not parse refuses the whole push,
naming the stream), and each line's structured metadata as name/value pairs,
merged the same way. The level comes from a ``level`` or ``detected_level``
label or structured-metadata key (read as in :mod:`services.logs.levels`), default
``info``; Loki stores any level text, so an unreadable one is stored as
``info`` with the original kept in metadata rather than rejecting the line.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from google.protobuf import struct_pb2

from botmon.logs.v1 import logs_service_pb2
from botmon.loki.v1 import push_pb2
from botmon.runtime.errors import InvalidArgument
from services.logs.ingest import (
    Batch,
    EntryProblem,
    Fields,
    Rejected,
    make_entry,
    metadata_json,
    strings_json,
    struct_to_python,
    validate,
)
from services.logs.labels import LabelError, parse_labels
from services.logs.levels import parse_level
from services.logs.row import NewEntry

__all__ = ["SERVICE_LABELS", "read_proto_push", "read_push"]

SERVICE_LABELS = ("service", "job", "service_name")
LEVEL_KEYS = ("level", "detected_level")
#: Digits of the largest Unix nanosecond timestamp in 64 bits.
MAX_TS_DIGITS = 19


def _service(labels: dict[str, str]) -> tuple[str, str | None]:
    for label in SERVICE_LABELS:
        if labels.get(label, "").strip():
            return labels[label], label
    return "unknown", None


def _level(metadata: dict) -> str:
    for key in LEVEL_KEYS:
        value = metadata.get(key)
        if isinstance(value, str) and parse_level(value) is not None:
            return value
    return "info"


def _timestamp(value: struct_pb2.Value) -> int:
    kind = value.WhichOneof("kind")
    text = value.string_value
    # isdigit alone takes "²" and other Unicode digits, which int() does not read.
    if kind == "string_value" and text.isascii() and text.isdigit():
        if len(text) > MAX_TS_DIGITS:
            raise EntryProblem(f"timestamp has {len(text)} digits; Unix nanoseconds have at "
                               f"most {MAX_TS_DIGITS}")
        return int(text)
    if kind == "number_value" and value.number_value.is_integer() and value.number_value >= 0:
        return int(value.number_value)
    raise EntryProblem('timestamp must be Unix nanoseconds as a string, e.g. "1705312800000000000"')


def _line(values: struct_pb2.ListValue, labels: dict[str, str], service: str,
          now: int) -> NewEntry:
    items = values.values
    if len(items) not in (2, 3):
        raise EntryProblem("each value must be [timestamp, line] or "
                           "[timestamp, line, {structured metadata}]")
    ts = _timestamp(items[0])
    if items[1].WhichOneof("kind") != "string_value":
        raise EntryProblem("the line (second element) must be a string")
    metadata: dict = dict(labels)
    if len(items) == 3:
        if items[2].WhichOneof("kind") != "struct_value":
            raise EntryProblem("structured metadata (third element) must be an object")
        metadata.update(struct_to_python(items[2].struct_value))
    return make_entry(ts, _level(metadata), service, items[1].string_value,
                      metadata_json(metadata) if metadata else None, now)


def read_push(request: logs_service_pb2.PushLokiRequest, now: int | None = None) -> Batch:
    """Rows for the readable lines; errors carry the stream (``batch``) and line (``index``)."""
    now = time.time_ns() if now is None else now
    batch = Batch()
    for stream_index, stream in enumerate(request.streams):
        labels = dict(stream.stream)
        service, used = _service(labels)
        if used:
            del labels[used]
        for line_index, values in enumerate(stream.values):
            try:
                batch.entries.append(_line(values, labels, service, now))
            except EntryProblem as exc:
                batch.errors.append(Rejected(line_index, str(exc), stream_index))
    return batch


def _stream_labels(stream: push_pb2.Stream, index: int) -> dict[str, str]:
    try:
        return parse_labels(stream.labels)
    except LabelError as exc:
        raise InvalidArgument(f"streams[{index}]: the label string does not parse: {exc}; "
                              'write it as {job="checkout", env="prod"}',
                              field=f"streams[{index}].labels") from None


def _stream_lines(stream: push_pb2.Stream, labels: dict[str, str]
                  ) -> Iterator[Fields | EntryProblem]:
    """Each line's fields, or what is wrong with it, in order."""
    service, used = _service(labels)
    if used:
        del labels[used]
    # The stream's labels are written once, and each line adds its structured metadata
    # to them (strings, written without a dict); a pair that overrides a label or names
    # the level, or a name given twice, takes the general way.
    level = _level(labels)
    try:
        shared = metadata_json(labels)
    except EntryProblem as exc:
        for _ in stream.entries:
            yield exc
        return
    members = shared[1:-1] if shared else None
    for line in stream.entries:
        stamp = line.timestamp
        nanos = stamp.nanos
        if not 0 <= nanos < 1_000_000_000:
            yield EntryProblem("timestamp nanos must be between 0 and 999999999")
            continue
        ts = stamp.seconds * 1_000_000_000 + nanos
        pairs = line.structured_metadata
        if not pairs:
            yield ts, level, service, line.line, shared
            continue
        own = [(pair.name, pair.value) for pair in pairs]
        names = {name for name, _ in own}
        if len(names) == len(own) and names.isdisjoint(labels) and names.isdisjoint(LEVEL_KEYS):
            try:
                yield ts, level, service, line.line, strings_json(own, members)
            except EntryProblem as exc:
                yield exc
            continue
        merged = {**labels, **dict(own)}
        try:
            yield ts, _level(merged), service, line.line, metadata_json(merged)
        except EntryProblem as exc:
            yield exc


def read_proto_push(request: push_pb2.PushRequest, now: int | None = None) -> Batch:
    """As :func:`read_push` for the protobuf body; a bad label string raises InvalidArgument."""
    now = time.time_ns() if now is None else now
    # Every label string is read before anything is kept: one that does not parse
    # refuses the whole push.
    streams = [(stream, _stream_labels(stream, i)) for i, stream in enumerate(request.streams)]
    batch = Batch()
    for stream_index, (stream, labels) in enumerate(streams):
        part = validate(_stream_lines(stream, labels), now)
        batch.entries += part.entries
        batch.errors += [Rejected(e.index, e.message, stream_index) for e in part.errors]
    return batch
