"""The OTLP log encoder writes the wire format by hand: what it writes decodes, with the
official opentelemetry-proto classes, to the request built from messages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue

from botmon import __version__
from services.export.sinks.base import LogRecord
from services.export.sinks.otlp_encoder import Encoder

#: Stored level -> (SeverityNumber, SeverityText), per the OpenTelemetry log data model.
SEVERITIES = {"debug": (5, "DEBUG"), "info": (9, "INFO"), "warn": (13, "WARN"),
              "error": (17, "ERROR"), "fatal": (0, "FATAL")}


def _any(value: Any) -> AnyValue:
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value) if -2**63 <= value < 2**63 \
            else AnyValue(double_value=value)
    if isinstance(value, float):
        return AnyValue(int_value=int(value)) if value.is_integer() and abs(value) < 2**63 \
            else AnyValue(double_value=value)
    if isinstance(value, Mapping):
        built = AnyValue()
        built.kvlist_value.values.extend(_pairs(value))
        return built
    if isinstance(value, list):
        built = AnyValue()
        built.array_value.values.extend(_any(v) for v in value)
        return built
    return AnyValue()


def _pairs(mapping: Mapping[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=_any(v)) for k, v in mapping.items()]


def _built(records: list[LogRecord], resource: dict[str, str]) -> ExportLogsServiceRequest:
    """The request of ``records`` made of messages, one ResourceLogs per service."""
    request = ExportLogsServiceRequest()
    scopes = {}
    for record in records:
        if record.service not in scopes:
            resource_logs = request.resource_logs.add()
            resource_logs.resource.attributes.extend(
                _pairs({**resource, "service.name": record.service}))
            scopes[record.service] = resource_logs.scope_logs.add(
                scope=InstrumentationScope(name="botmon", version=__version__))
        number, text = SEVERITIES[record.level]
        log_record = scopes[record.service].log_records.add(
            time_unix_nano=record.timestamp_ns, observed_time_unix_nano=record.timestamp_ns,
            severity_number=number, severity_text=text,
            body=AnyValue(string_value=record.message))
        log_record.attributes.extend(_pairs(record.metadata))
    return request


def _decoded(records: list[LogRecord], resource: dict[str, str]) -> ExportLogsServiceRequest:
    return ExportLogsServiceRequest.FromString(Encoder("botmon", resource).logs(records))


# Lengths either side of every change in a varint's size and of the encoder's lookups.
LENGTHS = (0, 1, 120, 121, 122, 125, 126, 127, 128, 129, 4093, 4095, 4096, 4097, 16383,
           16384, 70_000)
TEXTS = ("", "ü", "日本語 ✓", "emoji 🎉👍🏽", "tab\tnew\nline \"quoted\" \\", "\x00nul")


def _record(i: int, level: str, service: str, message: str, metadata: dict) -> LogRecord:
    return LogRecord(i, 1_764_000_000_123_456_789 + i, level, service, message, metadata)


def test_every_length_of_message_key_and_value_decodes_exactly():
    records = [_record(i, level, f"svc-{i % 3}", "m" * size,
                       {"k" * (1 + size % 300): "v" * size, "": "", "x": "é" * (size // 2)})
               for i, (size, level) in enumerate(
                   (size, level) for size in LENGTHS for level in SEVERITIES)]
    assert _decoded(records, {}) == _built(records, {})


@pytest.mark.parametrize("text", TEXTS)
def test_unicode_and_empty_texts_decode_exactly(text):
    records = [_record(1, "info", text or "svc", text, {text: text, "other": text}),
               _record(2, "warn", "svc", text * 200, {"long": text * 300})]
    assert _decoded(records, {"deployment.environment": text}) == \
        _built(records, {"deployment.environment": text})


def test_values_that_are_not_strings_decode_exactly():
    metadata = {"int": 3, "negative": -7, "max": 2**63 - 1, "min": -2**63, "beyond": 2**64,
                "whole": 4.0, "half": 2.5, "huge": 1e300, "true": True, "false": False,
                "none": None, "list": [1, "two", [3.5, None], {"k": "v"}],
                "nested": {"a": {"b": {"c": ["d", 9007199254740993]}}, "ü": "日本"},
                "empty": {}, "empty_list": [], "string": "s"}
    records = [_record(i, level, "svc", f"line {i}", metadata)
               for i, level in enumerate(SEVERITIES)]
    decoded = _decoded(records, {"team": "core"})
    assert decoded == _built(records, {"team": "core"})
    attributes = {kv.key: kv.value for kv in decoded.resource_logs[0].scope_logs[0]
                  .log_records[0].attributes}
    assert attributes["max"].int_value == 2**63 - 1 and attributes["min"].int_value == -2**63
    assert attributes["whole"].int_value == 4
    assert attributes["nested"].kvlist_value.values[0].value.kvlist_value.values[0].value \
        .kvlist_value.values[0].value.array_value.values[1].int_value == 9007199254740993


def test_services_interleaved_keep_their_order_within_each_resource():
    records = [_record(i, "error", ("a", "b", "c")[i % 3], f"line {i}", {"i": str(i)})
               for i in range(30)]
    decoded = _decoded(records, {})
    assert decoded == _built(records, {})
    assert [[r.body.string_value for r in rl.scope_logs[0].log_records]
            for rl in decoded.resource_logs][0] == [f"line {i}" for i in range(0, 30, 3)]


def test_a_lone_surrogate_is_replaced_and_the_record_still_goes_out():
    records = [_record(1, "info", "svc", "bad \ud800 text", {"key\udfff": "v\ud800"})]
    decoded = _decoded(records, {})
    log_record = decoded.resource_logs[0].scope_logs[0].log_records[0]
    assert log_record.body.string_value == "bad ? text"
    assert [(kv.key, kv.value.string_value) for kv in log_record.attributes] == [("key?", "v?")]
