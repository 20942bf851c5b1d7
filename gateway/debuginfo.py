"""``GET /debug/info``: every process's runtime figures, gathered by the gateway.

The gateway asks each backend's ``DebugService`` (with the usual deadline) and
adds its own; ``debug`` sums the counts over all processes that answered and
shows the gateway's environment, its ``config`` as the API document has it
(``debug_mode``, ``log_level``) and its full ``settings``, redacted.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from botmon.debug.v1 import debug_service_pb2
from botmon.runtime.channels import SERVICES, Backends, call_metadata
from botmon.runtime.config import Settings
from botmon.runtime.debug import debug_info
from gateway.convert import message_to_json
from gateway.errors import HTTP_STATUS

__all__ = ["gather_debug_info"]

_SUMMED = ("goroutines", "memory_allocations", "gc_runs", "open_files", "threads", "rss_mb")


async def _backend(backends: Backends, name: str, metadata) -> dict[str, Any]:
    try:
        reply = await backends.debug_stub(name).GetDebugInfo(
            debug_service_pb2.GetDebugInfoRequest(), timeout=backends.deadline, metadata=metadata)
    except grpc.aio.AioRpcError as exc:
        return {"error": {"code": HTTP_STATUS.get(exc.code(), 500), "status": exc.code().name,
                          "message": f"the {name} service did not answer: {exc.details()}"}}
    return message_to_json(reply)


async def gather_debug_info(backends: Backends, settings: Settings,
                            metadata: tuple = ()) -> dict[str, Any]:
    """``{"debug": <overall>, "services": {"gateway": {...}, "health": {...}, ...}}``."""
    metadata = (*call_metadata(), *metadata)
    names = list(SERVICES)
    answers = await asyncio.gather(*(_backend(backends, n, metadata) for n in names))
    services = {"gateway": message_to_json(debug_info("gateway", settings)),
                **dict(zip(names, answers, strict=True))}
    gateway = services["gateway"]["debug"]
    overall: dict[str, Any] = {key: 0 for key in _SUMMED}
    for entry in services.values():
        for key in _SUMMED:
            overall[key] += (entry.get("debug") or {}).get(key, 0)
    overall["rss_mb"] = round(overall["rss_mb"], 3)
    overall["environment"] = gateway["environment"]
    overall["config"] = gateway["config"]
    overall["settings"] = gateway["settings"]
    overall["processes"] = sum(1 for entry in services.values() if "debug" in entry)
    return {"debug": overall, "services": services}
