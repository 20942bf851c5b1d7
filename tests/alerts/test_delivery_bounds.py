"""Deliveries to a failing destination: bounded by BOTMON_ALERT_NOTIFY_ATTEMPTS, spaced by a
backoff that doubles each time (equal jitter: each wait is between half the step and the step)."""

from __future__ import annotations

import asyncio

from tests.alerts.conftest import fast, serve
from tests.waiting import eventually

CPU = dict(name="cpu_hot", metric="cpu.usage_percent", condition="greater_than", threshold=80,
           severity="critical")
INITIAL = 0.2


async def test_a_failing_destination_gets_exactly_the_configured_attempts_with_doubling_waits(
        alert_settings, metrics, receiver):
    receiver.fail("/down", *[500] * 20)
    alerts = fast(notify_attempts=5, retry_initial=INITIAL, retry_max=60.0)
    async with serve(alert_settings(), alerts) as svc:
        await svc.configure(**CPU, notify={"webhook": receiver.url("/down")})
        metrics.values["cpu.usage_percent"] = 91
        alert = await eventually(lambda: svc.alert_of("cpu_hot", "firing"))
        await eventually(lambda: len(receiver.at("/down")) == 5, within=30)
        gave_up = await eventually(lambda: _gave_up(svc, alert.alert_id), within=30)
        assert gave_up
        # The longest wait would have been 3.2 s: nothing more comes after it.
        await asyncio.sleep(4.0)
        arrivals = [r.time for r in receiver.at("/down")]
    assert len(arrivals) == 5
    waits = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    for attempt, wait in enumerate(waits, start=1):
        step = INITIAL * 2 ** (attempt - 1)
        # Never sooner than half the step; later only by scheduling delays.
        assert step / 2 <= wait <= step + 1.0, (attempt, wait, waits)


async def _gave_up(svc, alert_id: str) -> bool:
    return any(h.kind == "delivery" and h.detail == "gave up"
               for h in await svc.history(alert_id=alert_id))
