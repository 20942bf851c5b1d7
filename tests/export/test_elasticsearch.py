"""Elasticsearch destination: ECS documents through _bulk into data streams, per-item retries.

No Elasticsearch installs here; the stand-in (``elasticsearch_double``) is proven
against the official client first, then the sink is tested against it.
"""

from __future__ import annotations

import json

import elasticsearch
import pytest
from elasticsearch import AsyncElasticsearch

from botmon.runtime.config import ConfigError
from services.export.sinks import elasticsearch as es_sink
from services.export.sinks.base import SinkError
from tests.conftest import free_port
from tests.export.batches import (
    EVENTS,
    families,
    lines_now,
    operator_views,
    post,
    records,
    status_entry,
)
from tests.export.conftest import destinations, export_suite
from tests.export.elasticsearch_double import ElasticsearchDouble
from tests.waiting import eventually

API_KEY = "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="


@pytest.fixture
async def double():
    server = ElasticsearchDouble(api_key=API_KEY)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def sink(double):
    settings = es_sink.Settings.from_env({}, url=double.url, api_key=API_KEY)
    sink = es_sink.create(settings)
    yield sink
    await sink.close()


def doc_id(record) -> str:
    return f"{record.position}-{record.timestamp_ns}"


async def test_the_official_client_accepts_the_double(double):
    client = AsyncElasticsearch(double.url, api_key=API_KEY, request_timeout=5, max_retries=0)
    try:
        assert (await client.info())["version"]["number"].startswith("8.")
        assert not await client.indices.exists_index_template(name="t")
        await client.indices.put_index_template(
            name="t", index_patterns=["logs-x-*"], data_stream={}, priority=200,
            template={"mappings": {"properties": {"n": {"type": "long"}}}})
        assert await client.indices.exists_index_template(name="t")
        assert (await client.indices.get_index_template(name="t"))["index_templates"][0][
            "index_template"]["index_patterns"] == ["logs-x-*"]
        double.fail_item("b", 429)
        response = await client.bulk(operations=[
            {"create": {"_index": "logs-x-default", "_id": "a"}},
            {"@timestamp": "2026-12-02T12:00:00.123456789Z", "n": 1},
            {"create": {"_index": "logs-x-default", "_id": "b"}},
            {"@timestamp": "2026-12-02T12:00:01Z", "n": 2},
            {"create": {"_index": "logs-x-default", "_id": "c"}},
            {"@timestamp": "2026-12-02T12:00:02Z", "n": "not a number"},
            {"index": {"_index": "logs-x-default"}},
            {"@timestamp": "2026-12-02T12:00:03Z", "n": 4},
            {"create": {"_index": "logs-x-default", "_id": "a"}},
            {"@timestamp": "2026-12-02T12:00:00Z", "n": 1},
        ])
        assert response["errors"] is True
        statuses = [item["create" if "create" in item else "index"]["status"]
                    for item in response["items"]]
        assert statuses == [201, 429, 400, 400, 409]
        streams = await client.indices.get_data_stream(name="logs-x-default")
        assert streams["data_streams"][0]["template"] == "t"
        assert (await client.count(index="logs-x-default"))["count"] == 1
        with pytest.raises(elasticsearch.BadRequestError):
            await client.bulk(body='{"create": {"_index": "logs-x-default"}}')  # no final \n
    finally:
        await client.close()


async def test_the_double_refuses_what_elasticsearch_refuses(double):
    wrong = AsyncElasticsearch(double.url, api_key="d3Jvbmc=", request_timeout=5, max_retries=0)
    try:
        with pytest.raises(elasticsearch.AuthenticationException):
            await wrong.info()
    finally:
        await wrong.close()
    # A server that does not say it is Elasticsearch is refused by the client itself.
    double.product = False
    client = AsyncElasticsearch(double.url, api_key=API_KEY, request_timeout=5, max_retries=0)
    try:
        with pytest.raises(elasticsearch.UnsupportedProductError):
            await client.info()
    finally:
        await client.close()


async def test_logs_arrive_as_ecs_documents_in_their_data_stream(double, sink):
    batch = records(6)
    result = await sink.send_logs(batch)
    assert result.retry == () and result.rejected == ()
    assert set(double.templates) == {"botmon-logs", "botmon-metrics"}
    assert double.templates["botmon-logs"]["template"]["settings"] == {
        "index.lifecycle.name": "logs"}
    assert double.indices["logs-botmon-default"].data_stream
    docs = double.documents("logs-botmon-default")
    assert len(docs) == 6
    for record, doc in zip(batch, docs, strict=True):
        seconds, nanos = divmod(record.timestamp_ns, 10**9)
        assert doc["@timestamp"].endswith(f".{nanos:09d}Z")
        assert doc["log"]["level"] == record.level
        assert doc["service"]["name"] == record.service
        assert doc["message"] == record.message
        assert doc["event"]["sequence"] == record.position
        assert doc["labels"] == {"request_id": record.metadata["request_id"],
                                 "user_id": record.metadata["user.id"],
                                 "attempt": json.dumps(record.metadata["attempt"]),
                                 "ok": json.dumps(record.metadata["ok"])}
        assert doc["data_stream"] == {"type": "logs", "dataset": "botmon", "namespace": "default"}
    assert double.bulk_encodings == ["gzip"]


async def test_a_large_batch_arrives_whole_and_compressed(double, sink):
    # Over 64 KiB of NDJSON: compressed beside the event loop, the same documents arrive.
    batch = records(400)
    assert await sink.send_logs(batch) == es_sink.SendResult()
    docs = double.documents("logs-botmon-default")
    assert [(d["event"]["sequence"], d["message"]) for d in docs] == \
        [(r.position, r.message) for r in batch]
    assert double.bulk_encodings == ["gzip"]


async def test_metrics_arrive_with_their_types_and_values(double, sink):
    assert await sink.send_metrics(families(requests=10, latency_s=0.25)) == \
        es_sink.SendResult()
    docs = {(d["metric"]["name"], d["labels"].get("status")): d
            for d in double.documents("metrics-botmon-default")}
    counter = docs[("botmon_requests_total", "200")]["metric"]
    assert counter["type"] == "counter" and counter["value"] == 10.0
    assert docs[("botmon_requests_total", "500")]["metric"]["value"] == 2.0
    gauge = docs[("botmon_latency_seconds", None)]["metric"]
    assert gauge == {**gauge, "type": "gauge", "value": 0.25, "unit": "seconds"}
    histogram = docs[("botmon_request_duration_seconds", None)]["metric"]
    assert histogram["type"] == "histogram" and histogram["count"] == 6
    assert histogram["histogram"] == {"values": [0.1, 1.0], "counts": [3, 2]}
    assert histogram["sum"] == pytest.approx(0.3 + 1.0 + 2.0)


async def test_only_failed_items_come_back_for_a_resend(double, sink):
    batch = records(8)
    double.fail_item(doc_id(batch[2]), 429)
    double.fail_item(doc_id(batch[6]), 503)
    double.fail_item(doc_id(batch[4]), 400)
    result = await sink.send_logs(batch)
    assert result.retry == (2, 6)
    assert result.rejected == (4,)
    assert len(double.documents("logs-botmon-default")) == 5

    resend = [batch[i] for i in result.retry]
    assert await sink.send_logs(resend) == es_sink.SendResult()
    ids = [received_id for _, received_id, _ in double.received]
    assert ids.count(doc_id(batch[2])) == 2 and ids.count(doc_id(batch[6])) == 2
    assert ids.count(doc_id(batch[0])) == 1 and ids.count(doc_id(batch[4])) == 1
    assert len(double.documents("logs-botmon-default")) == 7


async def test_a_resent_batch_adds_no_duplicates(double, sink):
    batch = records(5)
    await sink.send_logs(batch)
    assert await sink.send_logs(batch) == es_sink.SendResult()  # 409s: already there
    await sink.send_metrics(families())
    await sink.send_metrics(families(timestamp_ns=None))  # a new sample time: new documents
    assert len(double.documents("logs-botmon-default")) == 5
    count = len(double.documents("metrics-botmon-default"))
    assert count == 8


async def test_a_mapping_conflict_is_rejected_for_good(double, sink):
    # Another shipper mapped labels.request_id as an object before botmon wrote there.
    await sink.send_logs(records(1))
    double.indices["logs-botmon-default"].mapping["labels.user_id"] = "object"
    result = await sink.send_logs(records(3, start_ns=10**18 + 7))
    assert result.rejected == (0, 1, 2) and result.retry == ()


async def test_whole_batch_failures_say_whether_to_retry(double, sink):
    double.fail_next(429, {"Retry-After": "7"})
    with pytest.raises(SinkError) as caught:
        await sink.send_logs(records(2))
    assert caught.value.retryable and caught.value.retry_after == 7.0

    double.fail_next(503)
    with pytest.raises(SinkError) as caught:
        await sink.send_logs(records(2))
    assert caught.value.retryable

    wrong_key = "c2VjcmV0LWtleS1uZXZlci1sb2dnZWQ="
    bad = es_sink.create(es_sink.Settings.from_env({}, url=double.url, api_key=wrong_key))
    try:
        with pytest.raises(SinkError) as caught:
            await bad.send_logs(records(2))
        assert caught.value.retryable  # kept until the key is fixed, not dropped
        assert "401" in str(caught.value) and wrong_key not in str(caught.value)
    finally:
        await bad.close()

    down = es_sink.create(es_sink.Settings.from_env(
        {}, url=f"http://127.0.0.1:{free_port()}", api_key=API_KEY))
    try:
        with pytest.raises(SinkError) as caught:
            await down.send_logs(records(2))
        assert caught.value.retryable and API_KEY not in str(caught.value)
    finally:
        await down.close()


async def test_basic_authentication(double):
    double.api_key, double.basic = None, ("botmon", "s3cret-pass")
    sink = es_sink.create(es_sink.Settings.from_env({
        "BOTMON_ELASTICSEARCH_URL": double.url, "BOTMON_ELASTICSEARCH_USERNAME": "botmon",
        "BOTMON_ELASTICSEARCH_PASSWORD": "s3cret-pass"}))
    try:
        assert await sink.send_logs(records(2)) == es_sink.SendResult()
    finally:
        await sink.close()
    assert len(double.documents("logs-botmon-default")) == 2


@pytest.mark.parametrize(("environ", "variable"), [
    ({"BOTMON_ELASTICSEARCH_URL": "es:9200"}, "BOTMON_ELASTICSEARCH_URL"),
    ({"BOTMON_ELASTICSEARCH_URL": "https://u:p@es:9200"}, "BOTMON_ELASTICSEARCH_URL"),
    ({"BOTMON_ELASTICSEARCH_URL": "https://es:9200", "BOTMON_ELASTICSEARCH_API_KEY": "k",
      "BOTMON_ELASTICSEARCH_USERNAME": "u"}, "BOTMON_ELASTICSEARCH_API_KEY"),
    ({"BOTMON_ELASTICSEARCH_URL": "https://es:9200", "BOTMON_ELASTICSEARCH_USERNAME": "u"},
     "BOTMON_ELASTICSEARCH_PASSWORD"),
])
def test_bad_settings_name_the_variable(environ, variable):
    with pytest.raises(ConfigError) as caught:
        es_sink.Settings.from_env(environ)
    assert str(caught.value).startswith(variable + ":")
    assert "\n" not in str(caught.value)


def test_settings_enable_and_redact():
    assert not es_sink.Settings.from_env({}).enabled
    settings = es_sink.Settings.from_env({"BOTMON_ELASTICSEARCH_URL": "https://es:9200",
                                          "BOTMON_ELASTICSEARCH_API_KEY": "top-secret"})
    assert settings.enabled
    assert settings.redacted()["BOTMON_ELASTICSEARCH_API_KEY"] == "***"
    assert "top-secret" not in repr(settings.redacted())


@pytest.mark.timeout(90)
async def test_through_the_export_loop_only_failed_items_are_resent(make_settings, double):
    double.fail_where(lambda _, doc: (doc or {}).get("message") == "flaky", 429, 503)
    sinks = {"elasticsearch": es_sink.Settings(url=double.url, api_key=API_KEY)}
    async with export_suite(make_settings(), sinks) as suite:
        lines = lines_now()
        await post(suite, "/logs", {"logs": lines})
        await post(suite, "/metrics/events", {"events": EVENTS})
        await eventually(lambda: len(double.documents("logs-botmon-default")) == 4, within=20)
        docs = {d["message"]: d for d in double.documents("logs-botmon-default")}
        error = docs["upstream timed out"]
        assert error["@timestamp"] == lines[0]["timestamp"].replace(".123456Z", ".123456000Z")
        assert error["log"]["level"] == "error" and error["service"]["name"] == "chat-api"
        assert error["labels"] == {"user_id": "u-1", "attempt": "3",
                                   "ctx": '{"region":"eu"}'}
        assert docs["job done"]["service"]["name"] == "worker"
        # The flaky entry was refused twice on its own and resent alone; the others went once.
        messages = [doc["message"] for index, _, doc in double.received
                    if index == "logs-botmon-default"]
        assert messages.count("flaky") == 3
        assert all(messages.count(m) == 1 for m in docs if m != "flaky")

        def requests_counted():
            counted: dict[str, float] = {}
            for doc in double.documents("metrics-botmon-default"):
                if doc["metric"]["name"] == "botserver_requests_total":
                    counted[doc["@timestamp"]] = counted.get(doc["@timestamp"], 0) + \
                        doc["metric"]["value"]
            return 3.0 in counted.values()

        await eventually(requests_counted, within=20)
        histogram = [d["metric"] for d in double.documents("metrics-botmon-default")
                     if d["metric"]["name"] == "botserver_request_duration_seconds"
                     and d["metric"]["count"] == 3]
        assert histogram and sum(histogram[-1]["histogram"]["counts"]) == 3
        state = (await destinations(suite))["elasticsearch"]
        assert state.sent == 4 and state.failed == 0
        # /status shows the same figures once its entry is refreshed.
        entry = await eventually(lambda: status_entry(suite, "export:elasticsearch", sent=4), within=10)
        assert entry["status"] == "running" and entry["details"]["failed"] == 0
        assert entry["details"]["endpoint"] == double.url
        assert API_KEY not in await operator_views(suite)
