"""Application figures under load: paced refreshes, served while one runs, error figures
from the logs service on their own interval, and a hung logs service delaying nothing."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time

import pytest

from botmon.logs.v1 import log_entry_pb2, logs_service_pb2
from botmon.metrics.v1 import metrics_pb2
from botmon.metrics.v1 import metrics_service_pb2 as pb
from botmon.runtime.config import ConfigError
from services.metrics.config import MetricsSettings
from tests.harness import Suite

REQUEST = metrics_pb2.Event(type="request", method="GET", route="/x", status=200,
                            duration_ms=3.0)


@contextlib.asynccontextmanager
async def hung_server():
    """A TCP address that accepts connections and never answers (a hung service)."""
    held: list[tuple[asyncio.StreamWriter, asyncio.Task]] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append((writer, asyncio.current_task()))
        with contextlib.suppress(ConnectionError):
            await reader.read()  # until the client goes away

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        for writer, _ in held:
            writer.close()
        await asyncio.gather(*(task for _, task in held), return_exceptions=True)
        await server.wait_closed()


async def test_continuous_ingest_refreshes_at_most_once_per_min_refresh(start_metrics):
    async with start_metrics(figures_min_refresh=0.5, error_refresh=1.0) as (server, stub):
        metrics = server.bindings[0].servicer.metrics
        await stub.GetApplicationMetrics(pb.GetApplicationMetricsRequest())
        refreshes, fetches = metrics.snapshot.refreshes, metrics.errors.fetches
        sent, totals, latencies = 0, [], []
        started = time.monotonic()
        while time.monotonic() - started < 2.0:
            await stub.RecordEvents(pb.RecordEventsRequest(events=[REQUEST] * 5))
            sent += 5
            asked = time.perf_counter()
            reply = await stub.GetApplicationMetrics(pb.GetApplicationMetricsRequest())
            latencies.append(time.perf_counter() - asked)
            totals.append(reply.application.requests.total)
        elapsed = time.monotonic() - started
        refreshed = metrics.snapshot.refreshes - refreshes
        fetched = metrics.errors.fetches - fetches
        # Once ingest stops, the last commits show within a refresh interval.
        for _ in range(40):
            final = (await stub.GetApplicationMetrics(pb.GetApplicationMetricsRequest())
                     ).application.requests.total
            if final == sent:
                break
            await asyncio.sleep(0.05)
    assert len(totals) >= 10, "the ingest was not continuous"
    # One refresh per GET before; now at most one per 0.5 s, whatever the commits.
    assert 2 <= refreshed <= elapsed / 0.5 + 1, (refreshed, elapsed)
    assert fetched <= elapsed / 1.0 + 1, (fetched, elapsed)
    assert totals == sorted(totals) and len(set(totals)) >= 2, totals
    assert final == sent


async def test_a_hung_logs_service_delays_neither_ticks_nor_requests(start_metrics):
    async with hung_server() as logs_addr, start_metrics(
            logs_addr=logs_addr, sample_interval=0.5, error_refresh=0.5,
            figures_min_refresh=0.2) as (server, stub):
        metrics = server.bindings[0].servicer.metrics
        call = stub.StreamMetrics(pb.StreamMetricsRequest(metrics=["cpu_usage", "error_rate"]))
        asked = time.monotonic()
        await call.read()
        # The service's very first figures wait for the logs service briefly (0.5 s), once.
        first_wait = time.monotonic() - asked
        ages: list[float] = []

        async def read_ticks() -> None:
            while True:
                reply = await call.read()
                ages.append(time.time() - reply.updates[0].timestamp.ToNanoseconds() / 1e9)

        reader = asyncio.create_task(read_ticks())
        latencies, sources = [], set()
        started = time.monotonic()
        while time.monotonic() - started < 3.0:
            await stub.RecordEvents(pb.RecordEventsRequest(events=[REQUEST] * 5))
            asked = time.perf_counter()
            reply = await stub.GetApplicationMetrics(pb.GetApplicationMetricsRequest())
            latencies.append(time.perf_counter() - asked)
            sources.add(reply.application.errors.source)
            await asyncio.sleep(0.02)
        reader.cancel()
        call.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        fetches = metrics.errors.fetches
    assert first_wait < 1.5, first_wait
    # Each fetch hangs until its 2 s deadline, in the background: a second one started.
    assert fetches >= 2
    # Ticks leave as samples are taken; waiting on the logs call would age them by its
    # 2 s deadline (the bounds leave room for a loaded machine, not for that wait).
    assert len(ages) >= 2 and statistics.median(ages) < 0.3 and max(ages) < 1.5, ages
    # The old figures waited out the logs call's 2 s deadline.
    assert max(latencies) < 1.5, max(latencies)
    assert sources == {"requests"}


async def test_error_figures_from_logs_follow_on_their_own_interval(make_settings):
    ms = MetricsSettings.from_env({}, error_refresh=0.5, figures_min_refresh=0.2)
    async with Suite(make_settings(), components=("logs", "metrics"), gateway=False,
                     options={"metrics": {"metrics_settings": ms}}) as suite:
        backends = suite.servers["metrics"].backends
        metrics = suite.servers["metrics"].bindings[0].servicer.metrics
        application = backends.stub("metrics").GetApplicationMetrics
        first = (await application(pb.GetApplicationMetricsRequest(), timeout=5)).application
        await backends.stub("logs").WriteLogs(logs_service_pb2.WriteLogsRequest(logs=[
            log_entry_pb2.LogEntry(level="error", service="web", message=f"m{i}")
            for i in range(2)]), timeout=5)
        fetches, started = metrics.errors.fetches, time.monotonic()
        for _ in range(100):
            errors = (await application(pb.GetApplicationMetricsRequest(), timeout=5)
                      ).application.errors
            if errors.total == 2:
                break
            await asyncio.sleep(0.03)
        elapsed = time.monotonic() - started
        fetched = metrics.errors.fetches - fetches
    assert (first.errors.source, first.errors.total) == ("logs", 0)
    assert (errors.source, errors.total, errors.rate_per_hour) == ("logs", 2, 2.0)
    # Up to the interval plus a refresh of the figures, and one fetch per interval.
    assert elapsed < 0.5 + 0.2 + 1.0, elapsed
    assert fetched <= elapsed / 0.5 + 1, (fetched, elapsed)


def test_min_refresh_may_not_exceed_the_ttl():
    with pytest.raises(ConfigError) as failure:
        MetricsSettings.from_env({"BOTMON_METRICS_MIN_REFRESH": "10",
                                  "BOTMON_METRICS_SNAPSHOT_TTL": "5"})
    assert "BOTMON_METRICS_MIN_REFRESH (10) must not exceed BOTMON_METRICS_SNAPSHOT_TTL (5)" \
        in str(failure.value)
