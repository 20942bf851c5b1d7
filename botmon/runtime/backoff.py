"""Exponential backoff with jitter, shared by every component that resends."""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    """Exponential backoff with equal jitter: half the step fixed, half random."""

    def __init__(self, initial: float, maximum: float, rng: random.Random | None = None):
        self.initial, self.maximum = initial, maximum
        self._rng = rng or random.Random()

    def delay(self, attempt: int) -> float:
        step = min(self.maximum, self.initial * 2 ** (attempt - 1))
        return step / 2 + self._rng.uniform(0, step / 2)
