"""Reading back what the ingest tests stored."""

from __future__ import annotations

import calendar
import time
from typing import Any

import httpx


def read(http: httpx.Client, suite, **params: Any) -> list[dict[str, Any]]:
    """Entries of ``GET /logs`` (oldest first) as a viewer."""
    response = http.get(f"{suite.base}/logs", params={"order": "asc", "limit": 1000, **params},
                        headers=suite.headers("viewer"))
    assert response.status_code == 200, response.text
    return response.json()["logs"]


def stored(http: httpx.Client, suite) -> int:
    """How many entries the store holds."""
    response = http.get(f"{suite.base}/logs", params={"limit": 1},
                        headers=suite.headers("viewer"))
    return response.json()["total"]


def seconds(stamp: str) -> int:
    """Whole Unix seconds of an RFC 3339 UTC timestamp as the API writes them."""
    return calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
