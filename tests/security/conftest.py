"""Fixtures of the security tests."""

from __future__ import annotations

import httpx
import pytest


@pytest.fixture
async def http():
    """An HTTP client with a bounded wait on every request."""
    async with httpx.AsyncClient(timeout=10) as client:
        yield client
