"""The export loop: each destination on its own tasks, under its own lease, from the store.

Per destination, while this replica holds its lease: log entries are read
after the stored position (oldest first), sent in batches bounded by count,
bytes and time, two at a time, and the position moves only past batches that
are acknowledged, in order, so delivery is at least once and a restart resumes where the last acknowledged
send ended. Entries older than ``max_age`` are skipped and counted. A failed
send is retried with exponential backoff and jitter (longer when the
destination says so); per-item failures resend only those items. The metric
catalogue is sent every ``interval``. A destination that fails holds up only
its own tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import grpc

from botmon.runtime.backoff import Backoff
from services.export.config import ExportSettings
from services.export.ledger import Ledger, State
from services.export.sinks.base import LogRecord, SendResult, Sink, SinkError
from services.export.source import Source

__all__ = ["Destination", "Exports", "LeaseLost"]

log = logging.getLogger("botmon.export.loop")

#: Longest ``Retry-After`` honoured as given, in seconds.
MAX_RETRY_AFTER = 3600.0
#: Batches of one destination being delivered at once: the next is encoded and sent
#: while the destination answers the last (positions are still saved in order).
IN_FLIGHT = 2
#: Seconds between two saves of a destination's position while it ships a backlog (it is
#: saved at once when the destination catches up, fails or stops). A save per batch was
#: hundreds of writes a second to the store ingest commits to; a crash now resends at
#: most this long's acknowledged batches, which at least once allows.
SAVE_EVERY = 0.5


class LeaseLost(Exception):
    """Another replica took over this destination; stop without saving."""


def _chunks(records: Sequence[LogRecord], cutoff_ns: int, max_records: int,
            max_bytes: int) -> Iterator[tuple[list[LogRecord], int, int]]:
    """(records to send, position after them, expired entries skipped among them)."""
    batch: list[LogRecord] = []
    size = expired = 0
    upto = 0
    for record in records:
        if record.timestamp_ns < cutoff_ns:
            expired += 1
            upto = record.position
            continue
        cost = record.size
        if batch and (len(batch) >= max_records or size + cost > max_bytes):
            yield batch, upto, expired
            batch, size, expired = [], 0, 0
        batch.append(record)
        size += cost
        upto = record.position
    if batch or expired:
        yield batch, upto, expired


class _InFlight(NamedTuple):
    """A batch being delivered, and what its acknowledgement moves the position to."""

    task: asyncio.Task | None  # None: every entry of the chunk had expired
    last_ns: int | None
    upto: int
    expired: int


class Destination:
    """One sink's delivery: its lease, its logs task and its metrics task."""

    def __init__(self, sink: Sink, source: Source, ledger: Ledger, settings: ExportSettings,
                 holder: str, *, backoff: Backoff | None = None):
        self.sink = sink
        self.name = sink.name
        self.source = source
        self.ledger = ledger
        self.settings = settings
        self.holder = holder
        self.backoff = backoff or Backoff(settings.retry_initial, settings.retry_max)
        self.state = State(self.name)
        self.leading = False
        self._workers: list[asyncio.Task] = []
        self._in_flight: deque[_InFlight] = deque()
        #: The highest position stored as of the last read: a settled batch's backlog is
        #: counted against it.
        self._high = 0
        #: When the state was last saved (monotonic seconds); how many settled batches moved
        #: it, and how many of those the last completed save covers.
        self._saved_at = 0.0
        self._moves = self._saved_moves = 0

    # ------------------------------------------------------------ lease

    async def run(self) -> None:
        """Hold (or wait for) the lease and run the workers while it is held."""
        await self.ledger.ensure(self.name)
        period = self.settings.lease_ttl / 3
        try:
            while True:
                try:
                    held = await self.ledger.acquire(self.name, self.holder,
                                                     self.settings.lease_ttl, time.time())
                except Exception as exc:  # the store is unreachable: assume the lease is gone
                    log.warning("lease renewal failed", extra={"destination": self.name,
                                                               "error": str(exc)})
                    held = False
                if held and (not self.leading or any(t.done() for t in self._workers)):
                    await self._stop_workers()
                    self.state = await self.ledger.load(self.name)
                    self.leading = True
                    self._workers = [
                        asyncio.create_task(self._guard(self._logs()), name=f"export-{self.name}-logs"),
                        asyncio.create_task(self._guard(self._metrics()),
                                            name=f"export-{self.name}-metrics")]
                    log.info("exporting", extra={"destination": self.name,
                                                 "position": self.state.position})
                elif not held and self.leading:
                    await self._stop_workers()
                await asyncio.sleep(period)
        finally:
            await self._stop_workers()

    async def _stop_workers(self) -> None:
        self.leading = False
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []

    async def _guard(self, work) -> None:
        try:
            await work
        except LeaseLost:
            log.info("lease lost", extra={"destination": self.name})
        except Exception:
            log.exception("export worker failed", extra={"destination": self.name})

    async def _save(self) -> None:
        # The state is written as it is now; a save cancelled on the way (a stop) covers
        # nothing, so the stop saves again.
        moves, self._saved_at = self._moves, time.monotonic()
        if not await self.ledger.save(self.state, self.holder, time.time()):
            raise LeaseLost(self.name)
        self._saved_moves = moves

    async def save_final(self) -> None:
        """Save what a stopped destination acknowledged since its last save (fenced: only
        while this replica still holds the lease)."""
        if self._moves != self._saved_moves:
            with contextlib.suppress(Exception):
                await self._save()

    # ------------------------------------------------------------ logs

    async def _logs(self) -> None:
        waiting_since: float | None = None
        page = min(self.settings.read_page, 10_000)
        # Where the next read starts: after the last page handed to _ship, which may be
        # ahead of the saved position while its batches are in flight.
        shipped = self.state.position
        # A full page means more is stored: the next one is read while this one is sent.
        ahead: asyncio.Task | None = None
        try:
            while True:
                read, ahead = ahead or self.source.logs_after(shipped, page), None
                try:
                    records, self._high = await read
                except grpc.aio.AioRpcError as exc:
                    log.debug("logs unreadable", extra={"code": exc.code().name})
                    await asyncio.sleep(self.settings.poll * 4)
                    continue
                if len(records) < page:
                    await self._settle(0)  # caught up: what is in flight lands first
                if not records:
                    if self.state.backlog or self.state.lag:
                        self.state.backlog, self.state.lag = 0, 0.0
                        await self._save()
                    await asyncio.sleep(self.settings.poll)
                    continue
                # Time bound: a batch that is not full waits up to `linger` for more entries.
                now = time.monotonic()
                waiting_since = waiting_since or now
                if len(records) < min(page, self.sink.max_records) and \
                        now - waiting_since < self.settings.linger:
                    await asyncio.sleep(min(self.settings.poll,
                                            self.settings.linger - (now - waiting_since)))
                    continue
                waiting_since = None
                shipped = records[-1].position
                if len(records) == page:
                    ahead = asyncio.ensure_future(self.source.logs_after(shipped, page))
                await self._ship(records)
        finally:
            pending = [t for t in (ahead, *(f.task for f in self._in_flight)) if t is not None]
            self._in_flight.clear()
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _ship(self, records: list[LogRecord]) -> None:
        """Start delivering one page in bounded batches; return once at most
        ``IN_FLIGHT - 1`` of this destination's batches are still in flight."""
        cutoff = int((time.time() - self.settings.max_age) * 1e9)
        for batch, upto, expired in _chunks(records, cutoff, self.sink.max_records,
                                            self.sink.max_bytes):
            task = asyncio.ensure_future(self._deliver(batch)) if batch else None
            self._in_flight.append(_InFlight(task, batch[-1].timestamp_ns if batch else None,
                                             upto, expired))
            await self._settle(IN_FLIGHT - 1)

    async def _settle(self, keep: int) -> None:
        """Wait for the oldest batches in flight until ``keep`` are left, saving the
        position after each in order: it moves only past acknowledged batches."""
        while len(self._in_flight) > keep:
            done = self._in_flight[0]
            if done.task is not None:
                await done.task
            self._in_flight.popleft()
            self.state.skipped += done.expired
            if done.last_ns is not None:
                self.state.lag = max(0.0, time.time() - done.last_ns / 1e9)
            self.state.position = done.upto
            self.state.backlog = max(0, self._high - done.upto)
            if not self.state.backlog:
                self.state.lag = 0.0
            self._moves += 1
            if not keep or time.monotonic() - self._saved_at >= SAVE_EVERY:
                await self._save()

    async def _deliver(self, batch: list[LogRecord]) -> None:
        """Send until every record is acknowledged, refused for good, or expired."""
        pending, attempt = batch, 0
        while pending:
            if attempt:
                cutoff = int((time.time() - self.settings.max_age) * 1e9)
                fresh = [r for r in pending if r.timestamp_ns >= cutoff]
                self.state.skipped += len(pending) - len(fresh)
                pending = fresh
                if not pending:
                    return
            try:
                result = await self.send_once(self.sink.send_logs, pending)
            except SinkError as exc:
                if not exc.retryable:
                    self.state.failed += len(pending)
                    await self._failed(str(exc))
                    return
                attempt += 1
                await self._failed(str(exc))
                await asyncio.sleep(self._delay(attempt, exc.retry_after))
                continue
            retry = set(result.retry)
            rejected = set(result.rejected) - retry
            self.state.sent += len(pending) - len(retry) - len(rejected)
            self.state.failed += len(rejected)
            self._succeeded()
            pending = [pending[i] for i in sorted(retry) if i < len(pending)]
            if pending:
                attempt += 1
                await asyncio.sleep(self._delay(attempt, None))

    async def send_once(self, send: Callable[[Any], Any], items) -> SendResult:
        """One send within the send timeout; any failure is a SinkError."""
        try:
            return await asyncio.wait_for(send(items), self.settings.send_timeout)
        except SinkError:
            raise
        except TimeoutError:
            raise SinkError(f"no answer within {self.settings.send_timeout:g}s") from None
        except Exception as exc:
            log.exception("sink failed", extra={"destination": self.name})
            raise SinkError(f"{type(exc).__name__}: {exc}") from None

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        delay = self.backoff.delay(attempt)
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
        return delay

    def _succeeded(self) -> None:
        self.state.last_success = time.time()
        self.state.failing_since = None
        self.state.last_error = ""

    async def _failed(self, error: str) -> None:
        if self.state.failing_since is None:
            self.state.failing_since = time.time()
            log.warning("sends failing", extra={"destination": self.name, "error": error})
        self.state.last_error = error[:500]
        await self._save()

    # ------------------------------------------------------------ metrics

    async def _metrics(self) -> None:
        interval = self.settings.interval
        while True:
            started = time.monotonic()
            try:
                families = await self.source.metric_families()
            except grpc.aio.AioRpcError as exc:
                log.debug("metrics unreadable", extra={"code": exc.code().name})
                families = []
            attempt = 0
            # Each export is a cumulative snapshot: retry until the next one is due, no longer.
            while families:
                try:
                    await self.send_once(self.sink.send_metrics, families)
                except SinkError as exc:
                    attempt += 1
                    await self._failed(str(exc))
                    delay = self._delay(attempt, exc.retry_after)
                    if not exc.retryable or time.monotonic() + delay - started >= interval:
                        self.state.metrics_failed += len(families)
                        await self._save()
                        break
                    await asyncio.sleep(delay)
                    continue
                self.state.metrics_sent += len(families)
                self._succeeded()
                await self._save()
                break
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    # ------------------------------------------------------------ visibility

    def status(self) -> str:
        return "degraded" if self.state.failing_since is not None else "running"

    def details(self) -> dict:
        """The figures of CONTRACT.md §10 as the status list shows them (no credentials)."""
        state = self.state
        return {
            "last_success": _iso(state.last_success), "lag_seconds": round(state.lag, 3),
            "backlog": state.backlog, "sent": state.sent, "failed": state.failed,
            "skipped": state.skipped, "metrics_sent": state.metrics_sent,
            "metrics_failed": state.metrics_failed, "position": state.position,
            "failing_seconds": round(time.time() - state.failing_since, 3)
            if state.failing_since is not None else 0,
            "interval_seconds": self.settings.interval, "last_error": state.last_error,
            "endpoint": getattr(self.sink, "endpoint", ""),
        }


def _iso(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + \
        f".{int(seconds % 1 * 1000):03d}Z"


class Exports:
    """Every configured destination, each on its own task, plus its entry in the status list.

    ``register(name, destination)`` returns an object with ``start()`` and async
    ``stop()`` that lists the destination in the status list while this replica leads it.
    """

    def __init__(self, destinations: list[Destination],
                 register: Callable[[str, Destination], Any] | None = None):
        self.destinations = destinations
        self.register = register
        self._tasks: list[asyncio.Task] = []
        self._entries: dict[str, Any] = {}

    def start(self) -> None:
        self._tasks = [asyncio.create_task(d.run(), name=f"export-{d.name}")
                       for d in self.destinations]
        if self.register is not None and self.destinations:
            self._tasks.append(asyncio.create_task(self._list(), name="export-status"))

    async def _list(self) -> None:
        while True:
            for destination in self.destinations:
                entry = self._entries.get(destination.name)
                if destination.leading and entry is None:
                    entry = self._entries[destination.name] = self.register(
                        f"export:{destination.name}", destination)
                    entry.start()
                elif not destination.leading and entry is not None:
                    del self._entries[destination.name]
                    await entry.stop()
            await asyncio.sleep(0.5)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for entry in self._entries.values():
            await entry.stop()
        self._entries.clear()
        for destination in self.destinations:
            await destination.save_final()
            with contextlib.suppress(Exception):
                await destination.ledger.release(destination.name, destination.holder)
            await destination.sink.close()
