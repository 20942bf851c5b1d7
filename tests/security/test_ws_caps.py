"""One caller cannot hold WebSockets without bound: past ``BOTMON_WS_MAX_PER_SUBJECT`` (20 by
default) open sockets of one token subject, or ``BOTMON_WS_MAX_PER_IP`` of one client IP, the
handshake is answered 429, and a closed socket frees its place."""

from __future__ import annotations

import contextlib

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.harness import Suite
from tests.waiting import eventually


def _open(suite: Suite, role: str = "viewer"):
    return websockets.connect(f"{suite.ws_url}/ws/logs", additional_headers=suite.headers(role),
                              open_timeout=5, close_timeout=2)


async def _refused(suite: Suite, role: str = "viewer") -> InvalidStatus:
    with pytest.raises(InvalidStatus) as refused:
        async with _open(suite, role):
            pass
    return refused.value


async def test_sockets_per_subject_are_capped_at_20_by_default(make_settings):
    async with Suite(make_settings(), components=("logs",)) as suite, \
            contextlib.AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(_open(suite)) for _ in range(20)]
        refusal = await _refused(suite)
        assert refusal.response.status_code == 429
        assert b"BOTMON_WS_MAX_PER_SUBJECT" in refusal.response.body
        # Another subject still gets in, and a closed socket frees a place.
        async with _open(suite, "operator"):
            pass
        await sockets.pop().close()
        await eventually(lambda: _opens(suite))


async def _opens(suite: Suite) -> bool:
    """True once a socket opens (the server counts a close when its handler has ended)."""
    try:
        async with _open(suite):
            return True
    except InvalidStatus:
        return False


async def test_sockets_per_ip_are_capped(make_settings):
    settings = make_settings(ws_max_per_subject=10, ws_max_per_ip=4)
    async with Suite(settings, components=("logs",)) as suite, \
            contextlib.AsyncExitStack() as stack:
        for role in ("viewer", "viewer", "operator", "operator"):
            await stack.enter_async_context(_open(suite, role))
        refusal = await _refused(suite, "admin")
        assert refusal.response.status_code == 429
        assert b"BOTMON_WS_MAX_PER_IP" in refusal.response.body
