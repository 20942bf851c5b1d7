"""A supervised child ends when its supervisor is gone, even if that was SIGKILLed.

The supervisor cannot arrange this itself before exec: that needs ``preexec_fn``,
which makes CPython fork() instead of vfork(), and forking a process whose gRPC
threads are running can crash the child. So the child asks the kernel at start.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

__all__ = ["follow_supervisor"]

_PR_SET_PDEATHSIG = 1


def follow_supervisor(supervisor_pid: int | None) -> None:
    """Get SIGTERM when the parent dies; exit at once if ``supervisor_pid`` is already gone."""
    if supervisor_pid is None or sys.platform != "linux":
        return
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    # The supervisor may have died between this process's start and the prctl above.
    if os.getppid() != supervisor_pid:
        raise SystemExit(0)
