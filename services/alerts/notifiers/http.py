"""POSTing a JSON body to a receiver, within a deadline, never raising."""

from __future__ import annotations

import aiohttp

from services.alerts.destinations import DestinationRefused
from services.alerts.notifiers.outcome import Outcome

__all__ = ["post_json"]


async def post_json(session: aiohttp.ClientSession, url: str, body: bytes, deadline: float,
                    headers: dict[str, str] | None = None) -> Outcome:
    """POST ``body`` (already serialised, so a signature covers exactly these bytes)."""
    try:
        async with session.post(url, data=body, allow_redirects=False,
                                headers={"Content-Type": "application/json", **(headers or {})},
                                timeout=aiohttp.ClientTimeout(total=deadline)) as response:
            return Outcome.from_http(response.status)
    except TimeoutError:
        return Outcome.failure(f"no answer within {deadline:g}s")
    except (aiohttp.ClientError, OSError) as exc:
        refused = getattr(exc, "os_error", exc)
        if isinstance(refused, DestinationRefused):
            return Outcome.failure(str(refused), retryable=False)
        # The type only: the text names the address and port, which history need not show.
        return Outcome.failure(f"connection failed ({type(exc).__name__})")
