"""The gateway's own traffic as ``botmon_gateway_*`` families, never mixed into ``botserver_*``.

They are appended to the body of ``/metrics/prometheus`` in the format the
scraper asked for (text 0.0.4, or OpenMetrics before its final ``# EOF``).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from typing import Any

from botmon.runtime.labels import method_label, status_label

__all__ = ["DURATION_BUCKETS", "Telemetry"]

#: Upper bounds of the request duration histogram, in seconds.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _labels(pairs: dict[str, str]) -> str:
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in pairs.items()) + "}"


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


class Telemetry:
    """Counters and a histogram of the gateway's requests, plus WebSocket figures."""

    def __init__(self, buckets: tuple[float, ...] = DURATION_BUCKETS):
        self.buckets = buckets
        self.requests: dict[tuple[str, str, str], int] = defaultdict(int)
        self.durations: dict[tuple[str, str], list[float]] = {}
        self.sockets: dict[str, int] = defaultdict(int)
        self.dropped: dict[str, int] = defaultdict(int)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one finished request; method and status from bounded sets (route is a template
        of the route table or "unmatched", so bounded too)."""
        method = method_label(method)
        self.requests[(route, method, status_label(status))] += 1
        # Per series: one count per bucket (non-cumulative), then the sum and the count.
        series = self.durations.get((route, method))
        if series is None:  # not setdefault: that would build a new list on every request
            series = self.durations[(route, method)] = [0.0] * (len(self.buckets) + 3)
        series[bisect.bisect_left(self.buckets, seconds)] += 1
        series[-2] += seconds
        series[-1] += 1

    def exposition(self, limiter: Any, *, openmetrics: bool) -> str:
        """The families as exposition text (no trailing ``# EOF``)."""
        lines: list[str] = []

        def family(name: str, kind: str, help_text: str, samples: list[tuple[str, dict, float]]):
            base = name.removesuffix("_total") if openmetrics and kind == "counter" else name
            lines.append(f"# HELP {base} {help_text}")
            lines.append(f"# TYPE {base} {kind}")
            for sample_name, labels, value in samples:
                lines.append(f"{sample_name}{_labels(labels)} {_number(value)}")

        family("botmon_gateway_requests_total", "counter",
               "Requests the gateway answered, by route template, method and status.",
               [("botmon_gateway_requests_total", {"route": r, "method": m, "status": s}, n)
                for (r, m, s), n in sorted(self.requests.items())])
        hist: list[tuple[str, dict, float]] = []
        for (route, method), series in sorted(self.durations.items()):
            labels = {"route": route, "method": method}
            cumulative = 0.0
            for bound, count in zip(self.buckets, series, strict=False):
                cumulative += count
                hist.append(("botmon_gateway_request_duration_seconds_bucket",
                             {**labels, "le": _number(bound)}, int(cumulative)))
            hist.append(("botmon_gateway_request_duration_seconds_bucket",
                         {**labels, "le": "+Inf"}, int(series[-1])))
            hist.append(("botmon_gateway_request_duration_seconds_sum", labels, series[-2]))
            hist.append(("botmon_gateway_request_duration_seconds_count", labels,
                         int(series[-1])))
        family("botmon_gateway_request_duration_seconds", "histogram",
               "Time from request to response in the gateway.", hist)
        counters = dict(getattr(limiter, "counters", {}) or {})
        for key, help_text in (("allowed", "Requests the rate limiter allowed."),
                               ("limited", "Requests the rate limiter refused with 429."),
                               ("errors", "Rate limiter backend (Redis) errors.")):
            name = f"botmon_gateway_ratelimit_{key}_total"
            family(name, "counter", help_text, [(name, {}, int(counters.get(key, 0)))])
        family("botmon_gateway_ratelimit_fail_open", "gauge",
               "1 while the rate limiter cannot reach Redis and lets requests through.",
               [("botmon_gateway_ratelimit_fail_open", {},
                 int(bool(getattr(limiter, "fail_open_active", False))))])
        family("botmon_gateway_websocket_connections", "gauge",
               "Open WebSocket connections by stream.",
               [("botmon_gateway_websocket_connections", {"stream": s}, n)
                for s, n in sorted(self.sockets.items())])
        family("botmon_gateway_websocket_dropped_messages_total", "counter",
               "Messages dropped because a WebSocket client read too slowly.",
               [("botmon_gateway_websocket_dropped_messages_total", {"stream": s}, n)
                for s, n in sorted(self.dropped.items())])
        return "\n".join(lines) + "\n"

    def append_to(self, body: bytes, limiter: Any, *, openmetrics: bool) -> bytes:
        """``body`` with the families added (before ``# EOF`` for OpenMetrics)."""
        text = body.decode("utf-8")
        extra = self.exposition(limiter, openmetrics=openmetrics)
        if openmetrics:
            head, sep, tail = text.rpartition("# EOF")
            if sep:
                return (head + extra + sep + tail).encode("utf-8")
            return (text + ("" if text.endswith("\n") or not text else "\n") + extra
                    + "# EOF\n").encode("utf-8")
        return (text + ("" if text.endswith("\n") or not text else "\n") + extra).encode("utf-8")
