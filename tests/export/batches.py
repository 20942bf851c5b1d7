"""Batches of log records and metric families the sink tests send (one place, all three)."""

from __future__ import annotations

import time

import httpx

from services.export.sinks.base import Bucket, LogRecord, MetricFamily, MetricSample

LEVELS = ("debug", "info", "warn", "error")


def records(count: int, *, services: tuple[str, ...] = ("chat", "billing"),
            start_ns: int | None = None, step_ns: int = 1_000_000) -> list[LogRecord]:
    """``count`` records, one ``step_ns`` apart, levels and services in turn, with metadata."""
    start_ns = start_ns or time.time_ns() - count * step_ns
    return [LogRecord(position=i + 1, timestamp_ns=start_ns + i * step_ns + 123,
                      level=LEVELS[i % 4], service=services[i % len(services)],
                      message=f"line {i} \u00e9t\u00e9",
                      metadata={"request_id": f"r-{i}", "user.id": str(1000 + i),
                                "attempt": i % 3, "ok": bool(i % 2)})
            for i in range(count)]


def families(*, requests: int = 10, latency_s: float = 0.25, timestamp_ns: int | None = None,
             start_ns: int | None = None, durations: tuple[int, int, int] = (3, 5, 6)
             ) -> list[MetricFamily]:
    """A counter, a gauge and a histogram, as the catalogue has them."""
    now = timestamp_ns or time.time_ns()
    start = start_ns or now - 3_600_000_000_000
    le_01, le_1, total = durations
    return [
        MetricFamily("botmon_requests_total", "counter", "Requests handled.", "", now, start, [
            MetricSample({"service": "chat", "status": "200"}, value=float(requests)),
            MetricSample({"service": "chat", "status": "500"}, value=2.0)]),
        MetricFamily("botmon_latency_seconds", "gauge", "Latest latency.", "seconds", now, start,
                     [MetricSample({"service": "chat"}, value=latency_s)]),
        MetricFamily("botmon_request_duration_seconds", "histogram", "Durations.", "seconds",
                     now, start, [MetricSample(
                         {"service": "chat"},
                         buckets=[Bucket(0.1, le_01), Bucket(1.0, le_1),
                                  Bucket(float("inf"), total)],
                         sum=0.1 * le_01 + 0.5 * (le_1 - le_01) + 2.0 * (total - le_1),
                         count=total)]),
    ]


# -- through the gateway, for the tests that run the real export loop ---------------------

def lines_now() -> list[dict]:
    """Log lines as a client posts them: one stamped a minute ago with microseconds."""
    stamped = time.time() - 60
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamped)) + ".123456Z"
    return [
        {"timestamp": stamp, "level": "error", "service": "chat-api",
         "message": "upstream timed out",
         "metadata": {"user_id": "u-1", "attempt": 3, "ctx": {"region": "eu"}}},
        {"level": "warn", "service": "chat-api", "message": "flaky"},
        {"level": "info", "service": "worker", "message": "job done", "metadata": {"job": "j-9"}},
        {"level": "debug", "service": "worker", "message": "tick"},
    ]


EVENTS = [
    {"type": "request", "method": "GET", "route": "/chat", "status": 200, "duration_ms": 120},
    {"type": "request", "method": "GET", "route": "/chat", "status": 502, "duration_ms": 80},
    {"type": "request", "method": "POST", "route": "/chat", "status": 200, "duration_ms": 30},
]


async def post(suite, path: str, body: dict) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        reply = await http.post(f"{suite.base}{path}", json=body,
                                headers=suite.headers("operator"))
        assert reply.status_code in (200, 201, 202), reply.text


async def status_entry(suite, name: str, *, sent: int) -> dict | None:
    """The ``name`` entry of ``GET /status`` (e.g. ``export:datadog``) once it counts ``sent``."""
    async with httpx.AsyncClient(timeout=10) as http:
        body = (await http.get(f"{suite.base}/status", headers=suite.headers())).json()
    entry = next((s for s in body["services"] if s["name"] == name), None)
    return entry if entry and entry["details"]["sent"] == sent else None


async def operator_views(suite) -> str:
    """What an operator can read: /status, /debug/info and /metrics/prometheus, as text."""
    async with httpx.AsyncClient(timeout=10) as http:
        return "\n".join([
            (await http.get(f"{suite.base}/status", headers=suite.headers())).text,
            (await http.get(f"{suite.base}/debug/info", headers=suite.headers("admin"))).text,
            (await http.get(f"{suite.base}/metrics/prometheus", headers=suite.headers())).text])
