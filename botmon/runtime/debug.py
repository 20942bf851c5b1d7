"""DebugService, served by every botmon process: its own runtime figures."""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
import time

import psutil
from google.protobuf import struct_pb2, timestamp_pb2

from botmon import __version__
from botmon.debug.v1 import debug_service_pb2, debug_service_pb2_grpc
from botmon.runtime.config import EnvSettings

__all__ = ["DebugServicer", "debug_info", "rss_mb"]

_START = time.time()


def rss_mb(process: psutil.Process) -> float:
    """``process``'s resident memory in MB (10^6 bytes), as the suite reports it."""
    return round(process.memory_info().rss / 1e6, 3)


def debug_info(component: str, *settings: EnvSettings) -> debug_service_pb2.GetDebugInfoResponse:
    """This process's figures; ``settings`` redacted into ``settings``, and ``config`` as the
    API document has it (``debug_mode``, ``log_level``)."""
    proc = psutil.Process()
    effective = struct_pb2.Struct()
    for s in settings:
        effective.update(s.redacted())
    log_level = str(getattr(settings[0], "log_level", "info")) if settings else "info"
    config = struct_pb2.Struct()
    config.update({"debug_mode": log_level == "debug", "log_level": log_level})
    try:
        tasks = len(asyncio.all_tasks())
    except RuntimeError:
        tasks = 0
    started = timestamp_pb2.Timestamp()
    started.FromNanoseconds(int(_START * 1e9))
    return debug_service_pb2.GetDebugInfoResponse(
        debug=debug_service_pb2.DebugInfo(
            goroutines=tasks,
            memory_allocations=sys.getallocatedblocks(),
            gc_runs=sum(s["collections"] for s in gc.get_stats()),
            open_files=proc.num_fds(),
            environment=getattr(settings[0], "environment", "production") if settings else "",
            config=config,
            settings=effective,
            threads=threading.active_count(),
            rss_mb=rss_mb(proc),
        ),
        service=component,
        pid=os.getpid(),
        start_time=started,
        version=__version__,
    )


class DebugServicer(debug_service_pb2_grpc.DebugServiceServicer):
    def __init__(self, component: str, *settings: EnvSettings):
        self.component = component
        self.settings = settings

    async def GetDebugInfo(self, request, context):
        return debug_info(self.component, *self.settings)
