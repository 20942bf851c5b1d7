"""The idle scheduling class, for background work that must not take CPU from requests.

Linux runs a thread in ``SCHED_IDLE`` only on CPU time no other thread wants, and
preempts it the moment one does. A niceness (even 19) keeps a share under contention and
is preempted only when its slice ends, so a request that woke up behind it waited. The
price: on a host that stays saturated, such work waits until load falls.
"""

from __future__ import annotations

import contextlib
import os

__all__ = ["idle"]


def idle() -> None:
    """Put the calling thread in the idle class; the threads it starts from then on inherit
    it, so called first in a process it covers the process."""
    with contextlib.suppress(OSError):  # a kernel or sandbox that refuses keeps the default
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
