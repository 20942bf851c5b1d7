"""Rate limits through the gateway: classes, keys, headers and 429 in the error format."""

from __future__ import annotations

import pytest

from tests.gateway.fakes import RecordingLogs, RecordingMetrics
from tests.harness import Suite


@pytest.fixture(params=["memory", "redis"])
async def suite(request, make_settings):
    environ = {"BOTMON_RATE_LIMITS": "metrics=3/minute,logs=2/minute,ingest=5/minute",
               "BOTMON_TRUSTED_PROXIES": "127.0.0.0/8"}
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    servicers = {"logs": RecordingLogs(), "metrics": RecordingMetrics()}
    async with Suite(make_settings(environ, redis_url=redis_url), components=(),
                     servicers=servicers, rate_limited=True) as suite:
        yield suite


async def test_logs_reads_limited_per_subject_with_headers(suite, http):
    for remaining in (1, 0):
        r = await http.get(f"{suite.base}/logs", headers=suite.headers("viewer"))
        assert r.status_code == 200
        assert r.headers["x-ratelimit-limit"] == "2"
        assert r.headers["x-ratelimit-remaining"] == str(remaining)
        assert r.headers["ratelimit-policy"] == '"logs";q=2;w=60'
    r = await http.get(f"{suite.base}/logs", headers=suite.headers("viewer"))
    assert r.status_code == 429
    error = r.json()["error"]
    assert (error["code"], error["status"]) == (429, "RESOURCE_EXHAUSTED")
    assert int(r.headers["retry-after"]) >= 1
    assert r.headers["x-ratelimit-remaining"] == "0"
    # Another subject has its own budget; writes are the ingest class.
    r = await http.get(f"{suite.base}/logs", headers=suite.headers("operator"))
    assert r.status_code == 200
    r = await http.post(f"{suite.base}/logs", json={"logs": []}, headers=suite.headers("admin"))
    assert r.status_code == 202 and r.headers["x-ratelimit-limit"] == "5"


async def test_metrics_limited_per_client_ip_behind_trusted_proxy(suite, http):
    for _ in range(3):
        r = await http.get(f"{suite.base}/metrics", headers={**suite.headers("viewer"),
                                                             "X-Forwarded-For": "203.0.113.9"})
        assert r.status_code == 200
    r = await http.get(f"{suite.base}/metrics", headers={**suite.headers("operator"),
                                                         "X-Forwarded-For": "203.0.113.9"})
    assert r.status_code == 429  # keyed by IP, not by subject
    r = await http.get(f"{suite.base}/metrics", headers={**suite.headers("viewer"),
                                                         "X-Forwarded-For": "198.51.100.7"})
    assert r.status_code == 200


async def test_health_is_unlimited_and_refusals_are_counted(suite, http):
    for _ in range(10):
        r = await http.get(f"{suite.base}/health/live")
        assert r.status_code == 200 and "x-ratelimit-limit" not in r.headers
    for _ in range(3):
        await http.get(f"{suite.base}/logs", headers=suite.headers("viewer"))
    r = await http.get(f"{suite.base}/metrics/prometheus", headers=suite.headers("viewer"))
    assert "botmon_gateway_ratelimit_limited_total 1" in r.text
    assert "botmon_gateway_ratelimit_allowed_total 3" in r.text
