"""OTLP logs in: the OpenTelemetry Python SDK's own exporters (HTTP and gRPC) through
``LoggingHandler``, read back with ``GET /logs``; partial success; bad input."""

from __future__ import annotations

import gzip
import json
import logging
import time
import uuid

import grpc
import pytest
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpExporter
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as otlp
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc as otlp_grpc
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    InMemoryLogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from gateway.shippers import MAX_INFLATED_BYTES
from services.logs.ingest import MAX_MESSAGE_BYTES, MAX_PUSH_LINES
from tests.conftest import suite_channel
from tests.ingest.support import read, seconds, stored
from tests.waiting import wait_until

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def _logger(provider: LoggerProvider) -> logging.Logger:
    """A stdlib logger whose records go only to ``provider``, as an instrumented app's do."""
    logger = logging.getLogger(f"app.{uuid.uuid4().hex[:8]}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(LoggingHandler(level=logging.DEBUG, logger_provider=provider))
    return logger


def _service() -> str:
    return f"shop-{uuid.uuid4().hex[:8]}"


def test_an_app_configured_only_by_environment_gets_its_lines_read_back(suite, http,
                                                                       monkeypatch):
    """OTEL_EXPORTER_OTLP_ENDPOINT=<gateway> and a token header, nothing else: the HTTP
    exporter appends /v1/logs and the SDK's default batching sends the lines."""
    service = _service()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", suite.url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS",
                       f"Authorization=Bearer%20{suite.tokens['operator']}")
    monkeypatch.setenv("OTEL_SERVICE_NAME", service)
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "host.name=web-1,deployment.environment=prod")
    provider = LoggerProvider(resource=Resource.create())
    provider.add_log_record_processor(BatchLogRecordProcessor(HttpExporter()))
    logger = _logger(provider)
    tracer = TracerProvider().get_tracer("checkout")
    try:
        with tracer.start_as_current_span("pay") as span:
            logger.warning("card declined for %s", "order-7", extra={"user_id": "user_456",
                                                                   "http.status_code": 402})
            context = span.get_span_context()
        try:
            raise ValueError("bad amount")
        except ValueError:
            logger.exception("payment failed")
        logger.debug("retrying")
        sent = time.time()

        entries = wait_until(lambda: len(found := read(http, suite, service=service)) == 3
                             and found, "the three lines in GET /logs", timeout=15)
    finally:
        provider.shutdown()
    warning, error, debug = entries
    assert (warning["level"], warning["message"]) == ("warn", "card declined for order-7")
    assert (error["level"], debug["level"], debug["message"]) == ("error", "debug", "retrying")
    assert abs(seconds(warning["timestamp"]) - sent) < 5
    meta = warning["metadata"]
    assert meta["user_id"] == "user_456" and meta["http"] == {"status_code": 402}
    assert meta["trace_id"] == format(context.trace_id, "032x")
    assert meta["span_id"] == format(context.span_id, "016x")
    assert meta["resource"]["host"] == {"name": "web-1"}
    assert meta["resource"]["deployment"] == {"environment": "prod"}
    assert "service" not in meta["resource"] or "name" not in meta["resource"]["service"]
    assert meta["scope"]["name"] == logger.name
    assert error["metadata"]["exception"]["type"] == "ValueError"
    assert error["metadata"]["error_type"] == "ValueError"
    assert "bad amount" in error["metadata"]["exception"]["stacktrace"]
    # Searchable like any other field: the trace id, and attributes by their dotted name.
    by_trace = read(http, suite, **{"metadata[trace_id]": meta["trace_id"]})
    assert [e["message"] for e in by_trace] == ["card declined for order-7"]
    by_host = read(http, suite, service=service, **{"metadata[resource.host.name]": "web-1"})
    assert len(by_host) == 3
    by_status = read(http, suite, service=service, **{"metadata[http.status_code]": "402"})
    assert [e["message"] for e in by_status] == ["card declined for order-7"]


def test_endpoint_and_token_alone_read_back_within_the_batch_delay(suite, http, monkeypatch):
    """Tried as a new user would: nothing but OTEL_EXPORTER_OTLP_ENDPOINT and the token in
    OTEL_EXPORTER_OTLP_HEADERS, the SDK's default batching. The SDK holds a batch that is not
    full for its schedule delay; within that and a second more the line is in GET /logs."""
    for name in ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                 "OTEL_EXPORTER_OTLP_LOGS_HEADERS", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", suite.url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS",
                       f"Authorization=Bearer%20{suite.tokens['operator']}")
    # OTEL_BLRP_SCHEDULE_DELAY, or the SDK's default (1 s) when unset, as here.
    delay = BatchLogRecordProcessor._default_schedule_delay_millis() / 1000
    provider = LoggerProvider()
    provider.add_log_record_processor(BatchLogRecordProcessor(HttpExporter()))
    logger = _logger(provider)
    # What the SDK names an app that names nothing ("unknown_service:python").
    service = Resource.create().attributes["service.name"]
    line = f"order {uuid.uuid4().hex[:8]} shipped"
    try:
        logger.info(line)
        (entry,) = wait_until(
            lambda: [e for e in read(http, suite, service=service, order="desc", limit=100)
                     if e["message"] == line],
            "the line in GET /logs", timeout=delay + 1)
    finally:
        provider.shutdown()
    assert entry["level"] == "info"


def test_the_grpc_exporter_writes_to_the_logs_service(suite, http):
    service = _service()
    exporter = GrpcExporter(endpoint=f"127.0.0.1:{suite.ports['logs']}", insecure=True,
                            headers=(("authorization", f"Bearer {suite.tokens['operator']}"),))
    provider = LoggerProvider(resource=Resource.create({"service.name": service}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = _logger(provider)
    logger.info("order placed", extra={"order": {"id": 7, "items": ["a", "b"]}})
    logger.critical("disk full")
    provider.shutdown()
    entries = read(http, suite, service=service)
    assert [(e["level"], e["message"]) for e in entries] == [("info", "order placed"),
                                                            ("error", "disk full")]
    assert entries[0]["metadata"]["order"] == {"id": 7, "items": ["a", "b"]}


def test_gzip_protobuf_from_the_http_exporter(suite, http):
    from opentelemetry.exporter.otlp.proto.http import Compression

    service = _service()
    exporter = HttpExporter(endpoint=f"{suite.url}/v1/logs", compression=Compression.Gzip,
                            headers={"Authorization": f"Bearer {suite.tokens['operator']}"})
    provider = LoggerProvider(resource=Resource.create({"service.name": service}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    _logger(provider).error("compressed %d", 1)
    provider.shutdown()
    assert [e["message"] for e in read(http, suite, service=service)] == ["compressed 1"]


def _sdk_request(service: str, *lines: tuple[int, str]) -> otlp.ExportLogsServiceRequest:
    """The request the SDK's encoder builds for ``lines`` (level, message) under a span."""
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource.create({"service.name": service}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = _logger(provider)
    with TracerProvider().get_tracer("t").start_as_current_span("s"):
        for level, message in lines:
            logger.log(level, message)
    provider.shutdown()
    return encode_logs(memory.get_finished_logs())


def _otlp_json(request: otlp.ExportLogsServiceRequest) -> dict:
    """OTLP/JSON of ``request``: proto JSON with trace and span ids as hex, as the spec says."""
    document = json_format.MessageToDict(request)
    records = [r for resource, scope in zip(request.resource_logs, document["resourceLogs"],
                                            strict=True)
               for message, s in zip(resource.scope_logs, scope["scopeLogs"], strict=True)
               for r in zip(message.log_records, s["logRecords"], strict=True)]
    for message, record in records:
        record["traceId"] = message.trace_id.hex()
        record["spanId"] = message.span_id.hex()
    return document


def test_json_encoding_answers_in_json(suite, http):
    service = _service()
    request = _sdk_request(service, (logging.INFO, "from json"), (logging.ERROR, "json error"))
    trace_id = request.resource_logs[0].scope_logs[0].log_records[0].trace_id.hex()
    response = http.post(f"{suite.url}/v1/logs", json=_otlp_json(request),
                         headers=suite.headers("operator"))
    assert response.status_code == 200 and response.json() == {}, response.text
    assert response.headers["content-type"].startswith("application/json")
    entries = read(http, suite, service=service)
    assert [(e["level"], e["message"]) for e in entries] == [("info", "from json"),
                                                            ("error", "json error")]
    assert entries[0]["metadata"]["trace_id"] == trace_id


def _record(message: str, **fields) -> dict:
    return {"body": {"stringValue": message}, **fields}


def _document(service: str, *records: dict) -> dict:
    """An OTLP/JSON request of ``records`` from ``service``."""
    return {"resourceLogs": [{
        "resource": {"attributes": [_attribute("service.name", {"stringValue": service})]},
        "scopeLogs": [{"logRecords": list(records)}]}]}


def test_partial_success_the_otlp_way(suite, http):
    service = _service()
    document = _document(
        service,
        _record("kept", severityNumber=13),
        {"severityText": "INFO"},  # no body: nothing to store as the message
        _record("x" * 40_000),  # over the 32 KiB message limit of WriteLogs
        _record("kept too", severityText="FATAL", timeUnixNano="1"),  # 1970: refused
        _record("also kept", severityText="LOUD"),
    )
    response = http.post(f"{suite.url}/v1/logs", json=document,
                         headers=suite.headers("operator"))
    assert response.status_code == 200, response.text
    partial = response.json()["partialSuccess"]
    assert partial["rejectedLogRecords"] == "3"
    assert "log_records[1]: message is required" in partial["errorMessage"]
    assert "log_records[2]: message is" in partial["errorMessage"]
    assert "log_records[3]: timestamp must lie" in partial["errorMessage"]
    entries = read(http, suite, service=service)
    assert [(e["level"], e["message"]) for e in entries] == [("warn", "kept"),
                                                            ("info", "also kept")]
    assert entries[1]["metadata"]["severity_text"] == "LOUD"

    # The same over protobuf answers in protobuf.
    request = json_format.ParseDict(document, otlp.ExportLogsServiceRequest())
    response = http.post(f"{suite.url}/v1/logs", content=request.SerializeToString(),
                         headers={**suite.headers("operator"), **PROTOBUF})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    reply = otlp.ExportLogsServiceResponse.FromString(response.content)
    assert reply.partial_success.rejected_log_records == 3


async def test_grpc_partial_success_and_undecodable_bytes(suite):
    service = _service()
    request = otlp.ExportLogsServiceRequest()
    resource = request.resource_logs.add()
    resource.resource.attributes.add(key="service.name").value.string_value = service
    records = resource.scope_logs.add().log_records
    records.add(severity_number=9).body.string_value = "over grpc"
    records.add(trace_id=b"short").body.string_value = "bad trace id"
    async with suite_channel(f"127.0.0.1:{suite.ports['logs']}", suite.settings) as channel:
        reply = await otlp_grpc.LogsServiceStub(channel).Export(request, timeout=10)
        assert reply.partial_success.rejected_log_records == 1
        assert "trace_id must be 16 bytes, got 5" in reply.partial_success.error_message
        raw = channel.unary_unary("/opentelemetry.proto.collector.logs.v1.LogsService/Export")
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await raw(request.SerializeToString()[:-4], timeout=10)
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "truncated or corrupt" in failed.value.details()
    assert "upb" not in failed.value.details()


def _status(response) -> status_pb2.Status:
    assert response.headers["content-type"] == "application/x-protobuf"
    return status_pb2.Status.FromString(response.content)


@pytest.mark.parametrize(("body", "headers", "code", "says"), [
    (b"\x0a\x05abc", PROTOBUF, 400, "truncated or corrupt"),
    (b"not gzip", {**PROTOBUF, "Content-Encoding": "gzip"}, 400, "not valid gzip"),
    (gzip.compress(b"\x0a\x05abcdefgh")[:-6], {**PROTOBUF, "Content-Encoding": "gzip"}, 400,
     "truncated"),
    (b"{}", {"Content-Type": "text/plain"}, 415, "application/x-protobuf or application/json"),
    (b"{}", {**PROTOBUF, "Content-Encoding": "br"}, 415, "Content-Encoding 'br'"),
    (b'{"resourceLogs": ' + b"[" * 50 + b"]" * 50 + b"}", {"Content-Type": "application/json"},
     400, "more than 32 levels deep"),
    (b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "xyz"}]}]}]}',
     {"Content-Type": "application/json"}, 400, "is not hex"),
    (b'{"resourceLogs": 5}', {"Content-Type": "application/json"}, 400,
     "not an OTLP/JSON ExportLogsServiceRequest"),
], ids=["truncated", "bad-gzip", "truncated-gzip", "content-type", "encoding", "deep-json",
        "bad-hex", "wrong-shape"])
def test_bad_requests_are_4xx_saying_why_and_store_nothing(suite, http, body, headers, code,
                                                           says):
    before = stored(http, suite)
    response = http.post(f"{suite.url}/v1/logs", content=body,
                         headers={**suite.headers("operator"), **headers})
    assert response.status_code == code, response.text
    if headers.get("Content-Type") == PROTOBUF["Content-Type"]:
        message = _status(response).message
    else:
        message = response.json()["error"]["message"]
    assert says in message
    assert stored(http, suite) == before


def test_a_request_with_nothing_storable_is_400(suite, http):
    request = _sdk_request(_service(), (logging.INFO, ""))
    response = http.post(f"{suite.url}/v1/logs", content=request.SerializeToString(),
                         headers={**suite.headers("operator"), **PROTOBUF})
    assert response.status_code == 400
    status = _status(response)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "log_records[0]: message is required" in status.message


def test_credentials_and_role(suite, http):
    body = _sdk_request(_service(), (logging.INFO, "who")).SerializeToString()
    response = http.post(f"{suite.url}/v1/logs", content=body, headers=PROTOBUF)
    assert response.status_code == 401 and "credentials" in _status(response).message
    response = http.post(f"{suite.url}/v1/logs", content=body,
                         headers={**suite.headers("viewer"), **PROTOBUF})
    assert response.status_code == 403 and "operator" in _status(response).message


def _attribute(key: str, value: dict) -> dict:
    return {"key": key, "value": value}


def test_attribute_keys_never_overwrite_each_other(suite, http):
    service = _service()
    record = _record("collisions", attributes=[
        _attribute("a", {"stringValue": "plain"}),
        _attribute("a.b", {"stringValue": "under a scalar"}),
        _attribute("c.d", {"intValue": "1"}),
        _attribute("c", {"boolValue": True}),
        _attribute("resource", {"stringValue": "an attribute, not the resource"}),
        _attribute("attributes", {"doubleValue": 1.5}),
        _attribute("list", {"arrayValue": {"values": [{"stringValue": "x"}, {"intValue": "2"}]}}),
        _attribute("map", {"kvlistValue": {"values": [_attribute("k.l", {"stringValue": "v"})]}}),
        _attribute("raw", {"bytesValue": "AAE="}),
    ])
    document = {"resourceLogs": [{
        "resource": {"attributes": [_attribute("service.name", {"stringValue": service}),
                                    _attribute("host.name", {"stringValue": "h"})]},
        "scopeLogs": [{"scope": {"name": "lib", "version": "1.2",
                                 "attributes": [_attribute("x.y", {"stringValue": "z"})]},
                       "logRecords": [record]}]}]}
    response = http.post(f"{suite.url}/v1/logs", json=document,
                         headers=suite.headers("operator"))
    assert response.status_code == 200 and response.json() == {}, response.text
    (entry,) = read(http, suite, service=service)
    assert entry["metadata"] == {
        "a": "plain", "c": {"d": 1}, "list": ["x", 2], "map": {"k": {"l": "v"}}, "raw": "AAE=",
        "attributes": {"a.b": "under a scalar", "c": True,
                       "resource": "an attribute, not the resource", "attributes": 1.5},
        "resource": {"host": {"name": "h"}},
        "scope": {"name": "lib", "version": "1.2", "attributes": {"x": {"y": "z"}}},
    }


def test_a_body_that_is_not_a_string_is_stored_as_json(suite, http):
    service = _service()
    kvlist = {"kvlistValue": {"values": [
        _attribute("event", {"stringValue": "checkout"}),
        _attribute("cart", {"arrayValue": {"values": [{"intValue": "3"}, {"doubleValue": 2.5}]}}),
        _attribute("paid", {"boolValue": True})]}}
    array = {"arrayValue": {"values": [
        {"stringValue": "a"}, {"intValue": "2"},
        {"kvlistValue": {"values": [_attribute("k", {"stringValue": "v"})]}}]}}
    response = http.post(f"{suite.url}/v1/logs", headers=suite.headers("operator"),
                         json=_document(service, {"body": kvlist}, {"body": array}))
    assert response.status_code == 200 and response.json() == {}, response.text
    entries = read(http, suite, service=service)
    assert [json.loads(e["message"]) for e in entries] == [
        {"event": "checkout", "cart": [3, 2.5], "paid": True}, ["a", 2, {"k": "v"}]]


def test_observed_time_stands_in_for_a_missing_time(suite, http):
    service = _service()
    an_hour_ago = time.time_ns() // 10**9 - 3600
    observed = an_hour_ago * 10**9 + 123_456_789
    response = http.post(f"{suite.url}/v1/logs", headers=suite.headers("operator"), json=_document(
        service,
        _record("observed only", observedTimeUnixNano=str(observed)),
        _record("both", timeUnixNano=str(observed - 10**9), observedTimeUnixNano=str(observed))))
    assert response.status_code == 200 and response.json() == {}, response.text
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(an_hour_ago))
    entries = read(http, suite, service=service)
    assert [(e["message"], e["timestamp"]) for e in entries] == [
        ("both", time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(an_hour_ago - 1))
         + ".123456789Z"),
        ("observed only", f"{stamp}.123456789Z")]


def test_a_gzip_body_over_the_inflation_cap_is_413_and_stores_nothing(suite, http):
    """Valid records, so only the cap stops them: more than MAX_INFLATED_BYTES once inflated,
    a few KiB as sent."""
    request = otlp.ExportLogsServiceRequest()
    resource = request.resource_logs.add()
    resource.resource.attributes.add(key="service.name").value.string_value = _service()
    records = resource.scope_logs.add().log_records
    line = "x" * (MAX_MESSAGE_BYTES // 2)
    for _ in range(MAX_INFLATED_BYTES // len(line) + 1):
        records.add(severity_number=9).body.string_value = line
    body = gzip.compress(request.SerializeToString())
    before = stored(http, suite)
    response = http.post(f"{suite.url}/v1/logs", content=body, headers={
        **suite.headers("operator"), **PROTOBUF, "Content-Encoding": "gzip"})
    assert response.status_code == 413, response.text
    assert f"larger than {MAX_INFLATED_BYTES} bytes once decompressed" in _status(response).message
    assert stored(http, suite) == before


def test_a_request_over_the_line_cap_is_refused_whole(suite, http):
    """The cap counts the whole request, here two resources each under it."""
    request = otlp.ExportLogsServiceRequest()
    service = _service()
    for _ in range(2):
        resource = request.resource_logs.add()
        resource.resource.attributes.add(key="service.name").value.string_value = service
        records = resource.scope_logs.add().log_records
        for _ in range(MAX_PUSH_LINES // 2 + 1):
            records.add().body.string_value = "x"
    before = stored(http, suite)
    response = http.post(f"{suite.url}/v1/logs", content=request.SerializeToString(),
                         headers={**suite.headers("operator"), **PROTOBUF})
    assert response.status_code == 400, response.text
    assert (f"the request has {MAX_PUSH_LINES + 2} log records; send at most {MAX_PUSH_LINES}"
            in _status(response).message)
    assert stored(http, suite) == before
