"""A load client in a process of its own: HTTP workers over a route schedule and/or
WebSocket subscribers of ``/ws/metrics``, measured over one window.

The orchestrator calls :func:`run_load` with a JSON-able spec::

    {"seconds": 20, "warmup": 1,
     "http": {"gateways": [base, …], "connections": 50, "rate": 365,
              "schedule": [[route_name, method, path, token, body_or_null], …]},
     "ws": {"urls": [url, …], "clients": 500, "token": …, "per_tick": 11, "interval": 1}}

The child (``python -m benchmarks.load <spec>``) connects every subscriber, runs the
HTTP workers through the warm-up, then prints ``@load measuring``, measures for
``seconds``, prints ``@load done`` and finally ``@load result <json>``; the
orchestrator reads those lines from the child's log so it can read CPU times at
the edges of exactly that window.

Without ``rate`` the HTTP workers are a closed loop: each sends its next request when
the last one is answered, so the load follows the server's speed. With ``rate`` (requests
per second over all workers) the load is offered at that rate whatever the answers, as
wrk2 does: worker ``i`` of ``n`` has its ``k``-th request due at ``(k·n + i) / rate``
after the start, and a latency counts from when the request was due, so a slow answer
that delays the next send is not hidden (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

import aiohttp

from benchmarks.processes import Processes

__all__ = ["percentile", "run_load"]

MARK = "@load "
CONNECT_CONCURRENCY = 50  # handshakes in flight at once; more only queue in the gateway
CONNECT_TIMEOUT = 30.0


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0 when empty)."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ---- orchestrator side ----------------------------------------------------------

def run_load(procs: Processes, name: str, spec: dict[str, Any], *,
             on_mark: Callable[[str, int], None], timeout: float) -> dict[str, Any]:
    """Run one load process to completion; ``on_mark("measuring"|"done", its pid)`` is
    called at the edges of its measuring window."""
    proc = procs.start(name, [sys.executable, "-m", "benchmarks.load", json.dumps(spec)])
    deadline = time.monotonic() + timeout
    pending = b""
    with (procs.logdir / f"{name}.log").open("rb") as log:
        while True:
            chunk = log.read()
            if not chunk:
                if proc.poll() is not None and not log.read(1):
                    raise RuntimeError(f"load {name} exited ({proc.returncode}) without a "
                                       f"result:\n{procs.tail(name)}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"load {name} gave no result within {timeout:g}s:\n"
                                       f"{procs.tail(name)}")
                time.sleep(0.01)
                continue
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                text = line.decode(errors="replace")
                if not text.startswith(MARK):
                    continue
                kind, _, payload = text.removeprefix(MARK).partition(" ")
                if kind == "result":
                    proc.wait(10)
                    return json.loads(payload)
                on_mark(kind, proc.pid)


# ---- the load process -------------------------------------------------------------

class _Route:
    """Latencies and outcomes of one route within the window."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.outcomes: Counter[str] = Counter()

    def summary(self, window: float) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        return {"count": len(ordered), "rps": len(ordered) / window,
                "p50_ms": percentile(ordered, 0.50) * 1000,
                "p99_ms": percentile(ordered, 0.99) * 1000,
                "mean_ms": sum(ordered) / len(ordered) * 1000 if ordered else 0.0,
                "outcomes": dict(self.outcomes)}


class _Subscribers:
    """What every WebSocket subscriber received within the window."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.settled = asyncio.Event()  # every subscriber connected or failed
        self.connected = 0
        self.failed: Counter[str] = Counter()
        self.closed_in_window = 0
        self.messages = 0
        self.other_frames: Counter[str] = Counter()
        self.dropped = 0
        self.sample_delays: list[float] = []
        self.tick_lags: list[float] = []

    def count(self, failure: str | None = None) -> None:
        if failure is None:
            self.connected += 1
        else:
            self.failed[failure] += 1
        if self.connected + sum(self.failed.values()) >= self.expected:
            self.settled.set()

    def summary(self, window: float) -> dict[str, Any]:
        delays, lags = sorted(self.sample_delays), sorted(self.tick_lags)
        return {"connected": self.connected, "failed": dict(self.failed),
                "closed_in_window": self.closed_in_window, "messages": self.messages,
                "messages_per_second": self.messages / window, "dropped": self.dropped,
                "other_frames": dict(self.other_frames),
                "sample_delay_p50_ms": percentile(delays, 0.50) * 1000,
                "sample_delay_p99_ms": percentile(delays, 0.99) * 1000,
                "tick_lag_p50_ms": percentile(lags, 0.50) * 1000,
                "tick_lag_p99_ms": percentile(lags, 0.99) * 1000}


class _Window:
    """Whether samples count now."""

    def __init__(self) -> None:
        self.open = False


def _mark(kind: str, payload: str = "") -> None:
    print(f"{MARK}{kind}{' ' + payload if payload else ''}", flush=True)


_STAMPS: dict[str, float] = {}


def _epoch(stamp: str) -> float:
    # Every update of a tick carries the same stamp: parse each distinct one once.
    value = _STAMPS.get(stamp)
    if value is None:
        value = _STAMPS[stamp] = datetime.fromisoformat(stamp).timestamp()
    return value


async def _subscribe(session: aiohttp.ClientSession, url: str, headers: dict[str, str],
                     spec: dict[str, Any], gate: asyncio.Semaphore, stats: _Subscribers,
                     window: _Window) -> None:
    try:
        async with gate, asyncio.timeout(CONNECT_TIMEOUT):
            socket = await session.ws_connect(url, headers=headers, autoping=True,
                                              timeout=aiohttp.ClientWSTimeout(ws_close=5))
    except aiohttp.WSServerHandshakeError as exc:
        stats.count(str(exc.status))
        return
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        stats.count(type(exc).__name__)
        return
    # Subscription ticks start when the stream opens, i.e. right after the handshake:
    # tick k is due at about connected + k * interval.
    connected = time.time()
    stats.count()
    per_tick, interval = spec["per_tick"], spec["interval"]
    frames = dropped = 0
    try:
        async for message in socket:
            now = time.time()
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            frame = json.loads(message.data)
            if frame.get("type") != "metric_update":
                stats.other_frames[str(frame.get("type"))] += 1
                continue
            dropped = frame.get("dropped", 0)
            tick = (frames + dropped) // per_tick
            frames += 1
            if window.open:
                stats.messages += 1
                stats.sample_delays.append(now - _epoch(frame["timestamp"]))
                stats.tick_lags.append(now - (connected + tick * interval))
        if window.open:
            stats.closed_in_window += 1
    finally:
        stats.dropped += dropped
        await socket.close()


async def _work(session: aiohttp.ClientSession, index: int, spec: dict[str, Any],
                routes: dict[str, _Route], window: _Window) -> None:
    gateways, schedule = spec["gateways"], spec["schedule"]
    base = gateways[index % len(gateways)]
    # Workers start at different places in the schedule so every route is in flight at once.
    step = index * 7
    rate = spec.get("rate")
    due = time.perf_counter() + index / rate if rate else 0.0
    while True:
        name, method, path, token, body = schedule[step % len(schedule)]
        step += 1
        headers = {"Authorization": f"Bearer {token}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if rate:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            started, due = due, due + spec["connections"] / rate
        else:
            started = time.perf_counter()
        try:
            async with session.request(method, base + path, data=body, headers=headers) as reply:
                await reply.read()
                outcome = str(reply.status)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            outcome = type(exc).__name__
        if window.open:
            route = routes[name]
            route.latencies.append(time.perf_counter() - started)
            route.outcomes[outcome] += 1


async def _run(spec: dict[str, Any]) -> dict[str, Any]:
    window = _Window()
    http, ws = spec.get("http"), spec.get("ws")
    subscribers = _Subscribers(ws["clients"] if ws else 0)
    routes = {entry[0]: _Route() for entry in (http or {}).get("schedule", [])}
    tasks: list[asyncio.Task] = []
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=aiohttp.ClientTimeout(total=None)) as ws_session, \
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(
                limit=(http or {}).get("connections", 1)), timeout=timeout) as http_session:
        if ws:
            gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
            headers = {"Authorization": f"Bearer {ws['token']}"}
            tasks += [asyncio.create_task(_subscribe(
                ws_session, ws["urls"][i % len(ws["urls"])], headers, ws, gate,
                subscribers, window)) for i in range(ws["clients"])]
            # Each connect has its own deadline, so this wait is bounded too.
            await subscribers.settled.wait()
        if http:
            tasks += [asyncio.create_task(_work(http_session, i, http, routes, window))
                      for i in range(http["connections"])]
        await asyncio.sleep(spec.get("warmup", 1.0))
        _mark("measuring")
        window.open, began = True, time.perf_counter()
        await asyncio.sleep(spec["seconds"])
        window.open, elapsed = False, time.perf_counter() - began
        _mark("done")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    overall = _Route()
    for route in routes.values():
        overall.latencies += route.latencies
        overall.outcomes.update(route.outcomes)
    return {"window": elapsed,
            "routes": {name: route.summary(elapsed) for name, route in routes.items()},
            "all": overall.summary(elapsed),
            "ws": subscribers.summary(elapsed) if ws else None}


if __name__ == "__main__":
    result = asyncio.run(_run(json.loads(sys.argv[1])))
    _mark("result", json.dumps(result))
