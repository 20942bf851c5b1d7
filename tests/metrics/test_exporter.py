"""The Prometheus exposition: parsed by prometheus_client, clean under promtool."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import grpc
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

from botmon.metrics.v1 import metrics_pb2
from botmon.metrics.v1 import metrics_service_pb2 as pb
from services.metrics.catalogue import FAMILIES

EVENTS = [
    *(metrics_pb2.Event(type="request", method="GET", route="/a", status=200, duration_ms=d,
                        bytes=1000) for d in (3.0, 40.0, 40.0, 700.0)),
    metrics_pb2.Event(type="request", method="POST", route="/b", status=504, duration_ms=12000.0),
    metrics_pb2.Event(type="request", method="post", route="/b", status=404, duration_ms=8.0),
    metrics_pb2.Event(type="session_started", session_id="s1"),
    metrics_pb2.Event(type="conversation_started", conversation_id="c1"),
    metrics_pb2.Event(type="conversation_completed", conversation_id="c1", messages=7),
]


def samples(families) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in families for s in family.samples}


async def scrape(stub, fmt: str = "") -> pb.GetPrometheusMetricsResponse:
    return await stub.GetPrometheusMetrics(pb.GetPrometheusMetricsRequest(format=fmt))


async def test_text_format_has_every_family_with_the_ingested_figures(start_metrics):
    async with start_metrics() as (_, stub):
        await stub.RecordEvents(pb.RecordEventsRequest(events=EVENTS))
        reply = await scrape(stub)
    assert reply.body.content_type == "text/plain; version=0.0.4; charset=utf-8"
    families = list(parse_text(reply.body.data.decode()))
    names = {f.name for f in families}
    # The other services are unreachable here: their families are present without samples.
    assert names == {f.name.removesuffix("_total") for f in FAMILIES}
    got = samples(families)
    assert got[("botserver_requests_total", (("method", "GET"), ("status", "200")))] == 4
    assert got[("botserver_requests_total", (("method", "POST"), ("status", "504")))] == 1
    assert got[("botserver_requests_total", (("method", "POST"), ("status", "404")))] == 1
    hist = "botserver_request_duration_seconds"
    assert got[(f"{hist}_bucket", (("le", "0.005"),))] == 1
    assert got[(f"{hist}_bucket", (("le", "0.05"),))] == 4
    assert got[(f"{hist}_bucket", (("le", "1.0"),))] == 5
    assert got[(f"{hist}_bucket", (("le", "10.0"),))] == 5
    assert got[(f"{hist}_bucket", (("le", "+Inf"),))] == 6
    assert got[(f"{hist}_count", ())] == 6
    assert abs(got[(f"{hist}_sum", ())] - 12.791) < 1e-9
    assert got[("botserver_request_errors_total", (("class", "server"),))] == 1
    assert got[("botserver_request_errors_total", (("class", "timeout"),))] == 1
    assert got[("botserver_request_errors_total", (("class", "client"),))] == 1
    assert got[("botserver_response_bytes_total", ())] == 4000
    assert got[("botserver_sessions_active", ())] == 1
    assert got[("botserver_conversations_completed_total", ())] == 1
    assert got[("botserver_conversation_messages_total", ())] == 7
    assert got[("botserver_errors_last_hour", (("source", "requests"),))] == 1
    assert got[("botserver_cpu_cores", ())] >= 1
    assert not any(name.startswith("botserver_component_up") for name, _ in got)


async def test_openmetrics_format(start_metrics):
    async with start_metrics() as (_, stub):
        await stub.RecordEvents(pb.RecordEventsRequest(events=EVENTS))
        reply = await scrape(stub, "openmetrics")
    assert reply.body.content_type == \
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    text = reply.body.data.decode()
    assert text.endswith("# EOF\n")
    got = samples(parse_om(text))
    assert got[("botserver_requests_total", (("method", "GET"), ("status", "200")))] == 4


async def test_unknown_format_is_refused(start_metrics):
    async with start_metrics() as (_, stub):
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await scrape(stub, "json")
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "format must be text or openmetrics" in failure.value.details()


@pytest.mark.skipif(not shutil.which("promtool"),
                    reason="promtool is not installed (Debian package 'prometheus')")
async def test_promtool_reports_nothing(start_metrics):
    async with start_metrics() as (_, stub):
        await stub.RecordEvents(pb.RecordEventsRequest(events=EVENTS))
        reply = await scrape(stub)
    checked = await asyncio.to_thread(subprocess.run, ["promtool", "check", "metrics"],
                                      input=reply.body.data, capture_output=True, timeout=30)
    assert checked.returncode == 0, checked.stderr.decode() + checked.stdout.decode()
    assert checked.stdout.decode() + checked.stderr.decode() == ""
