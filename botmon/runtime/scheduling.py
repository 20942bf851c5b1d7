"""The idle scheduling class, for background work that must not take CPU from requests.

Linux runs a thread in ``SCHED_IDLE`` only on CPU time no other thread wants, and
preempts it the moment one does. A niceness (even 19) keeps a share under contention and
is preempted only when its slice ends, so every request that woke up behind it waited:
with the export at niceness 10, REST ingest ran at 0.87× of its rate with the export
paused; in the idle class, 0.99× (``make bench BENCH=export``). The price: on a host
that stays saturated, such work waits until load falls.
"""

from __future__ import annotations

import contextlib
import os

__all__ = ["IDLE_POLICY", "idle"]

IDLE_POLICY = os.SCHED_IDLE


def idle(thread_id: int = 0) -> None:
    """Put one thread (``0``: the calling thread) in the idle class; the threads it starts
    from then on inherit it, so called first in a process it covers the process."""
    with contextlib.suppress(OSError):  # a kernel or sandbox that refuses keeps the default
        os.sched_setscheduler(thread_id, IDLE_POLICY, os.sched_param(0))
