"""New Relic: OTLP/HTTP protobuf, gzip, with the licence key as api-key, to the endpoint set."""

from __future__ import annotations

import httpx
import pytest

from botmon.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from services.export.sinks import newrelic
from tests.conftest import suite_channel
from tests.export.conftest import destinations, export_suite
from tests.export.receivers import HttpReceiver
from tests.logs.support import entry
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(90)

KEY = "eu01xx0123456789abcdefNRAL"


async def test_logs_and_metrics_reach_new_relic_with_the_api_key(make_settings):
    receiver = HttpReceiver()
    await receiver.up()
    try:
        sinks = {"newrelic": newrelic.Settings(license_key=KEY, region="eu",
                                               endpoint=receiver.endpoint)}
        async with export_suite(make_settings(), sinks) as suite:
            async with httpx.AsyncClient(timeout=10) as http:
                r = await http.post(f"{suite.base}/logs", headers=suite.headers("operator"),
                                    json={"logs": [{"level": "error", "service": "billing",
                                                    "message": "card declined",
                                                    "metadata": {"order": "o-7"}}]})
                assert r.status_code in (200, 201, 202), r.text
            received = receiver.received
            await eventually(lambda: received.logs and received.metric_requests, within=15)
            record = received.logs[0]
            assert record["body"] == "card declined" and record["severity_text"] == "ERROR"
            assert record["resource"]["service.name"] == "billing"
            assert record["attributes"] == {"order": "o-7"}
            assert "botserver_requests_total" in received.metrics()
            for headers in received.headers:
                assert headers["api-key"] == KEY
                assert headers["content-encoding"] == "gzip"
                assert headers["content-type"] == "application/x-protobuf"
            state = (await destinations(suite))["newrelic"]
            assert state.endpoint == receiver.endpoint and state.sent == 1
    finally:
        await receiver.down()


async def test_batches_stay_under_the_payload_limit_counting_metadata(make_settings):
    # 2.4 MB of entries, nearly all of it metadata, written at once: the export reads them in
    # one page and cuts batches by their estimated bytes, metadata included.
    receiver = HttpReceiver()
    await receiver.up()
    try:
        sinks = {"newrelic": newrelic.Settings(license_key=KEY, endpoint=receiver.endpoint)}
        async with export_suite(make_settings(), sinks) as suite:
            entries = [entry(service="bulk", message=f"entry {i}",
                             metadata={"blob": "y" * 16_000}) for i in range(150)]
            async with suite_channel(f"127.0.0.1:{suite.ports['logs']}",
                                     suite.settings) as channel:
                reply = await logs_service_pb2_grpc.LogsServiceStub(channel).WriteLogs(
                    logs_service_pb2.WriteLogsRequest(logs=entries), timeout=30)
            assert reply.accepted == 150
            received = receiver.received
            await eventually(lambda: len(received.logs) >= 150, within=30)
            assert set(received.bodies()) == {f"entry {i}" for i in range(150)}
            assert len(received.log_payload_bytes) >= 5
            assert max(received.log_payload_bytes) <= newrelic.MAX_PAYLOAD
    finally:
        await receiver.down()


def test_region_picks_the_documented_endpoint():
    assert newrelic.create(newrelic.Settings(license_key="k")).endpoint == \
        "https://otlp.nr-data.net"
    eu = newrelic.create(newrelic.Settings(license_key="k", region="eu"))
    assert eu.transports["logs"].urls == {"logs": "https://otlp.eu01.nr-data.net/v1/logs",
                                          "metrics": "https://otlp.eu01.nr-data.net/v1/metrics"}
    assert not newrelic.Settings().enabled
