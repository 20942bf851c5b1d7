"""What operators see of the export: /status, /health/detailed, /metrics/prometheus, gRPC."""

from __future__ import annotations

import dataclasses

import grpc
import httpx
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from botmon.export.v1 import export_service_pb2, export_service_pb2_grpc
from services.export.sinks import newrelic, otlp
from tests.conftest import suite_channel
from tests.export.conftest import FAST, destinations, export_suite
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(120)


async def _detailed(suite) -> dict:
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.get(f"{suite.base}/health/detailed", headers=suite.headers())
    assert r.status_code in (200, 503), r.text
    return r.json()


async def test_without_destinations_export_idles_and_is_not_configured(make_settings):
    async with export_suite(make_settings(probe_interval=0.2), {}) as suite:
        assert await destinations(suite) == {}
        body = await _detailed(suite)
        assert body["components"]["export"]["status"] == "not_configured"
        async with suite_channel(f"127.0.0.1:{suite.ports['export']}", suite.settings) as channel:
            stub = export_service_pb2_grpc.ExportServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as missing:
                await stub.SendTestEntry(
                    export_service_pb2.SendTestEntryRequest(destination="otlp"), timeout=5)
            assert missing.value.code() == grpc.StatusCode.NOT_FOUND
            with pytest.raises(grpc.aio.AioRpcError) as empty:
                await stub.SendTestEntry(export_service_pb2.SendTestEntryRequest(), timeout=5)
            assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            services = []
            async for reply in reflection_pb2_grpc.ServerReflectionStub(
                    channel).ServerReflectionInfo(
                    iter([reflection_pb2.ServerReflectionRequest(list_services="")])):
                services = [s.name for s in reply.list_services_response.service]
            assert "botmon.export.v1.ExportService" in services
            assert "grpc.health.v1.Health" in services


async def test_a_failing_destination_degrades_export_but_never_makes_it_unhealthy(
        make_settings, stopped_receiver):
    grpc_receiver = stopped_receiver
    quick = dataclasses.replace(FAST, interval=0.5)
    settings = make_settings(probe_interval=0.2, heartbeat_interval=0.2)
    sinks = {"otlp": otlp.Settings(endpoint=grpc_receiver.endpoint),
             "newrelic": newrelic.Settings(license_key="nr-licence-key-123456",
                                           endpoint="http://proxy:pw-in-url-789@127.0.0.1:9")}
    async with export_suite(settings, sinks, quick) as suite:
        async def degraded():
            # Degraded once the first destination has failed for two intervals; the second
            # starts failing on its own schedule, so wait for both.
            body = await _detailed(suite)
            export = body["components"]["export"]
            return body if export["status"] == "degraded" and \
                export["failing_destinations"] == 2 else None

        body = await eventually(degraded, within=20)
        export = body["components"]["export"]
        assert export["destinations"] == 2
        assert "otlp: failing for" in export["reason"]
        assert body["status"] != "unhealthy"
        async with httpx.AsyncClient(timeout=10) as http:
            status = (await http.get(f"{suite.base}/status", headers=suite.headers())).text
            prom = (await http.get(f"{suite.base}/metrics/prometheus",
                                   headers=suite.headers())).text
            debug = (await http.get(f"{suite.base}/debug/info",
                                    headers=suite.headers("admin"))).text
        assert 'botmon_export_up{destination="otlp"} 0.0' in prom
        for text in (status, prom, debug, body.__repr__()):
            assert "nr-licence-key-123456" not in text and "pw-in-url-789" not in text
        assert "http://127.0.0.1:9" in status  # the endpoint is shown, without its password

        await grpc_receiver.up()

        async def recovered():
            body = await _detailed(suite)
            return body["components"]["export"]["failing_destinations"] == 1 or None

        await eventually(recovered, within=20)


async def test_prometheus_series_and_test_entry(make_settings, grpc_receiver):
    sinks = {"otlp": otlp.Settings(endpoint=grpc_receiver.endpoint)}
    async with export_suite(make_settings(), sinks) as suite:
        async with httpx.AsyncClient(timeout=10) as http:
            r = await http.post(f"{suite.base}/logs", headers=suite.headers("operator"),
                                json={"logs": [{"level": "info", "service": "s",
                                                "message": f"m{i}"} for i in range(7)]})
            assert r.status_code in (200, 201, 202)
            await eventually(lambda: len(grpc_receiver.received.logs) >= 7, within=15)

            async def series():
                text = (await http.get(f"{suite.base}/metrics/prometheus",
                                       headers=suite.headers())).text
                return text if 'botmon_export_sent_total{destination="otlp"} 7.0' in text \
                    else None

            text = await eventually(series, within=10)
        assert 'botmon_export_up{destination="otlp"} 1.0' in text
        assert 'botmon_export_backlog{destination="otlp"} 0.0' in text
        assert 'botmon_export_skipped_total{destination="otlp"} 0.0' in text
        assert "botmon_export_last_success_timestamp_seconds" in text
        async with suite_channel(f"127.0.0.1:{suite.ports['export']}", suite.settings) as channel:
            reply = await export_service_pb2_grpc.ExportServiceStub(channel).SendTestEntry(
                export_service_pb2.SendTestEntryRequest(destination="otlp", message="ping"),
                timeout=10)
        assert reply.accepted and not reply.error
        assert "ping" in grpc_receiver.received.bodies()
