"""A background job run every few seconds on its own task, from ``start()`` to ``stop()``."""

from __future__ import annotations

import asyncio
import logging

__all__ = ["Periodic"]

log = logging.getLogger("botmon.runtime.periodic")


class Periodic:
    """Calls ``run_once()`` at once and then every ``period`` seconds; a run that raises is
    handed to ``failed()`` (logged by default) and the next one comes on time."""

    def __init__(self, name: str, period: float):
        self.name = name
        self.period = period
        self._task: asyncio.Task | None = None

    async def run_once(self) -> None:
        raise NotImplementedError

    def failed(self, exc: Exception) -> None:
        log.error("%s failed; retrying in %gs", self.name, self.period, exc_info=exc)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception as exc:
                self.failed(exc)
            await asyncio.sleep(self.period)
