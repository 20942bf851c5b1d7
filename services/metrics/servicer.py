"""MetricsService: proto in, proto out."""

from __future__ import annotations

import time
from collections import deque

from botmon.metrics.v1 import metrics_pb2, metrics_service_pb2, metrics_service_pb2_grpc
from botmon.runtime.errors import InvalidArgument
from services.metrics import dashboard, exporter
from services.metrics.events import aggregate, check_batch_size, proto_time
from services.metrics.json_body import json_time, read_events
from services.metrics.messages import application_message, performance_response, timestamp
from services.metrics.performance import choose, measure
from services.metrics.service import Metrics
from services.metrics.stream import Tick, parse_subscription

__all__ = ["MetricsServicer"]

#: StreamEvents batches awaiting their commit before the stream reads more.
_IN_FLIGHT = 8


def _response(tick: Tick, dropped: int) -> metrics_service_pb2.StreamMetricsResponse:
    """The response of ``tick``; built once for all the subscribers that dropped nothing."""
    if not dropped and tick.rendered is not None:
        return tick.rendered
    stamp = timestamp(tick.time)
    response = metrics_service_pb2.StreamMetricsResponse(updates=[
        metrics_pb2.MetricUpdate(type="metric_update", metric=name, value=value,
                                 timestamp=stamp, dropped=dropped)
        for name, value in tick.values])
    if not dropped:
        tick.rendered = response
    return response


class MetricsServicer(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    async def GetSystemMetrics(self, request, context):
        sample = self.metrics.collector.latest
        system = self.metrics.snapshot.system()
        return metrics_service_pb2.GetSystemMetricsResponse(
            system=system, timestamp=timestamp(sample.time),
            sample_period_seconds=round(sample.period, 3))

    async def GetApplicationMetrics(self, request, context):
        figures, errors = await self.metrics.snapshot.application()
        return metrics_service_pb2.GetApplicationMetricsResponse(
            application=application_message(figures, errors), timestamp=timestamp(figures.now))

    async def GetPerformanceMetrics(self, request, context):
        period, resolution = choose(request.period, request.resolution)
        perf = await measure(self.metrics.store, period, resolution, time.time())
        return performance_response(perf)

    async def GetMetricValues(self, request, context):
        values, sampled = await self.metrics.snapshot.values()
        return metrics_service_pb2.GetMetricValuesResponse(values=values,
                                                           timestamp=timestamp(sampled))

    async def RecordEvents(self, request, context):
        accepted, errors = await self._record(request.events, proto_time)
        return metrics_service_pb2.RecordEventsResponse(accepted=accepted, errors=errors)

    async def RecordEventsHttp(self, request, context):
        accepted, errors = await self._record(read_events(request.body.data), json_time)
        return metrics_service_pb2.RecordEventsHttpResponse(accepted=accepted, errors=errors)

    async def _record(self, events, when) -> tuple[int, list[metrics_pb2.EventError]]:
        """Store a batch of events; how many were, and the rejected ones."""
        check_batch_size(events, "events")
        batch, errors = aggregate(events, time.time(), self.metrics.rules, when=when)
        if not batch.events:
            shown = "; ".join(message for _, message in errors[:5])
            more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
            raise InvalidArgument(f"no event is valid: {shown}{more}", field="events")
        accepted = batch.events  # read first: the ingestor may merge others into the batch
        await self.metrics.ingestor.submit(batch)
        return accepted, [metrics_pb2.EventError(index=i, message=m) for i, m in errors]

    async def StreamEvents(self, request_iterator, context):
        accepted = rejected = offset = 0
        waiting: deque = deque()
        async for message in request_iterator:
            check_batch_size(message.events, f"message at event {offset}")
            batch, errors = aggregate(message.events, time.time(), self.metrics.rules, offset)
            offset += len(message.events)
            rejected += len(errors)
            if batch.events:
                waiting.append((batch.events, self.metrics.ingestor.submit(batch)))
            while len(waiting) > _IN_FLIGHT:
                count, future = waiting.popleft()
                await future
                accepted += count
        for count, future in waiting:
            await future
            accepted += count
        return metrics_service_pb2.StreamEventsResponse(accepted=accepted, rejected=rejected)

    async def StreamMetrics(self, request, context):
        names, interval = parse_subscription(request.metrics, request.interval_seconds)
        await self.metrics.snapshot.ready()
        with self.metrics.hub.subscribe(names, interval,
                                        self.metrics.ms.stream_queue_size) as subscription:
            async for tick in subscription.ticks():
                yield _response(tick, subscription.dropped)

    async def GetPrometheusMetrics(self, request, context):
        return await exporter.export(self.metrics, request.format)

    async def ListMetricFamilies(self, request, context):
        return await exporter.structured(self.metrics)

    async def GetGrafanaDashboard(self, request, context):
        return metrics_service_pb2.GetGrafanaDashboardResponse(dashboard=dashboard.as_struct())
