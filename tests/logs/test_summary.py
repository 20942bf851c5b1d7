"""The error summary: counts by type and service, last error, and the error rate from metrics."""

from __future__ import annotations

import grpc
import pytest

from botmon.logs.v1 import logs_service_pb2 as pb
from botmon.logs.v1 import logs_service_pb2_grpc
from botmon.metrics.v1 import metrics_pb2, metrics_service_pb2, metrics_service_pb2_grpc
from services.logs.__main__ import create_server as create_logs
from services.logs.config import LogsSettings
from services.metrics.__main__ import create_server as create_metrics
from tests.conftest import free_port, suite_channel
from tests.logs.support import entry, now

HOUR = 3600.0


async def _summary(stub, period: str = "") -> pb.GetErrorSummaryResponse:
    return await stub.GetErrorSummary(pb.GetErrorSummaryRequest(period=period), timeout=30)


async def test_errors_are_counted_by_type_and_service_over_the_period(logs):
    t = now()
    await logs.write([
        entry("error", "api", "db down", t - 60, {"error_type": "database_error"}),
        entry("error", "api", "bad input", t - 120, {"error_type": "validation_error"}),
        entry("error", "jobs", "no type", t - 180),
        entry("error", "jobs", "db down again", t - 2 * HOUR, {"error_type": "database_error"}),
        entry("error", "hooks", "old", t - 3 * 86_400, {"error_type": "timeout_error"}),
        entry("warn", "api", "not an error", t - 30, {"error_type": "database_error"}),
    ])
    hour = (await _summary(logs.stub, "1h")).summary
    assert hour.period == "1h" and hour.total_errors == 3
    assert dict(hour.errors_by_type) == {"database_error": 1, "validation_error": 1,
                                         "unknown_error": 1}
    assert dict(hour.errors_by_service) == {"api": 2, "jobs": 1}
    assert abs(hour.last_error_time.ToNanoseconds() / 1e9 - (t - 60)) < 1e-3
    day = await _summary(logs.stub)
    assert day.summary.period == "24h" and day.summary.total_errors == 4
    assert abs(day.timestamp.ToNanoseconds() / 1e9 - now()) < 60
    week = (await _summary(logs.stub, "7d")).summary
    assert week.total_errors == 5 and week.errors_by_service["hooks"] == 1
    # Without a metrics service, the rate is 0 and the summary says why.
    assert (week.error_rate, week.total_requests) == (0.0, 0)
    assert week.requests_source.startswith("unavailable: metrics service answered")


async def test_an_empty_store_has_no_last_error(logs):
    summary = (await _summary(logs.stub, "30d")).summary
    assert summary.total_errors == 0 and not summary.HasField("last_error_time")
    assert dict(summary.errors_by_type) == {}


@pytest.mark.parametrize("period", ["2h", "day", "24H "])
async def test_bad_periods_list_the_good_ones(logs, period):
    if period == "24H ":  # case and blanks are forgiven
        assert (await _summary(logs.stub, period)).summary.period == "24h"
        return
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _summary(logs.stub, period)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "period must be one of 1h, 24h, 7d, 30d" in info.value.details()


async def test_error_rate_uses_the_requests_reported_to_the_metrics_service(make_settings):
    settings = make_settings(health_target="127.0.0.1:9", metrics_addr=f"127.0.0.1:{free_port()}")
    metrics = await create_metrics(settings, address=settings.metrics_addr)
    logs = await create_logs(settings, address="127.0.0.1:0",
                             logs_settings=LogsSettings(retention_interval=3600.0))
    async with metrics, logs:
        async with suite_channel(settings.metrics_addr, settings) as channel:
            events = [metrics_pb2.Event(type="request", method="GET", route="/x",
                                        status=200 if i % 10 else 500, duration_ms=12.0)
                      for i in range(200)]
            recorded = await metrics_service_pb2_grpc.MetricsServiceStub(channel).RecordEvents(
                metrics_service_pb2.RecordEventsRequest(events=events), timeout=30)
            assert recorded.accepted == 200
        async with suite_channel(f"127.0.0.1:{logs.port}", settings) as channel:
            stub = logs_service_pb2_grpc.LogsServiceStub(channel)
            await stub.WriteLogs(pb.WriteLogsRequest(logs=[entry("error", message=f"e{i}")
                                                           for i in range(5)]), timeout=30)
            for period in ("1h", "24h", "7d", "30d"):  # each needs its own resolution
                summary = (await _summary(stub, period)).summary
                assert summary.requests_source == "metrics", period
                assert summary.total_requests == 200, period
                assert summary.error_rate == pytest.approx(5 / 200), period
