"""Gzip for request bodies, off the event loop when a body is large."""

from __future__ import annotations

import asyncio
import gzip

__all__ = ["INLINE_BYTES", "gzipped"]

#: Bodies below this are compressed on the loop: a thread would cost more than it saves.
INLINE_BYTES = 65_536


async def gzipped(body: bytes, level: int) -> bytes:
    """``body`` gzip-compressed; zlib lets go of the GIL, so a large one is compressed in a
    thread while the event loop goes on."""
    if len(body) < INLINE_BYTES:
        return gzip.compress(body, level)
    return await asyncio.to_thread(gzip.compress, body, level)
