"""The gateway in front of the real health service: snapshot, status and registration."""

from __future__ import annotations

import asyncio
import time

from tests.harness import Suite


async def test_real_health_service_behind_the_gateway(make_settings, http):
    settings = make_settings(probe_interval=0.5, heartbeat_interval=0.2)
    async with Suite(settings, components=("health",)) as suite:
        deadline = time.monotonic() + 10
        while True:
            r = await http.get(f"{suite.base}/health")
            status = await http.get(f"{suite.base}/status", headers=suite.headers())
            names = {s["name"] for s in status.json().get("services", [])}
            if (r.status_code == 200 and "gateway" in names) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert r.status_code == 200, r.text
        assert r.json()["status"] in ("healthy", "degraded")
        assert "gateway" in names, status.text
        gateway = next(s for s in status.json()["services"] if s["name"] == "gateway")
        assert gateway["port"] == suite.port and gateway["status"] == "running"
        r = await http.get(f"{suite.base}/health/detailed",
                           headers={**suite.headers(), "Accept": "application/health+json"})
        assert r.headers["content-type"].startswith("application/health+json")
        assert "storage:availableSpace" in r.json()["checks"]
