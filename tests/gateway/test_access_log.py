"""The access log: one JSON line per request at info, with the request id, written off the
request path."""

from __future__ import annotations

import asyncio
import json
import logging
import re

from tests.harness import Suite


async def test_every_request_gets_one_json_line_with_its_request_id(make_settings, http, capfd):
    logger = logging.getLogger("botmon.gateway")
    before = logger.level
    logger.setLevel(logging.INFO)
    try:
        async with Suite(make_settings(), components=()) as suite:
            capfd.readouterr()
            given = await http.get(f"{suite.base}/health/live",
                                   headers={"X-Request-ID": "abc-123"})
            fresh = [await http.get(f"{suite.base}/health/live") for _ in range(3)]
            missing = await http.get(f"{suite.base}/nowhere")
            await asyncio.sleep(0.3)  # a flush interval and more
            lines = [json.loads(line) for line in capfd.readouterr().err.splitlines()
                     if '"message":"request"' in line]
    finally:
        logger.setLevel(before)
    assert given.headers["x-request-id"] == "abc-123"
    ids = [r.headers["x-request-id"] for r in fresh]
    assert len(set(ids)) == 3 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert [line["request_id"] for line in lines] == ["abc-123", *ids,
                                                      missing.headers["x-request-id"]]
    first = lines[0]
    assert list(first)[:6] == ["time", "level", "component", "logger", "message", "request_id"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])
    assert (first["level"], first["component"], first["logger"]) == (
        "info", "gateway", "botmon.gateway")
    assert (first["method"], first["path"], first["status"]) == (
        "GET", "/api/v1/monitoring/health/live", 200)
    assert first["route"] == "/api/v1/monitoring/health/live"
    assert isinstance(first["duration_ms"], float) and first["duration_ms"] >= 0
    assert (lines[-1]["status"], lines[-1]["route"]) == (404, "unmatched")


async def test_no_lines_above_info(make_settings, http, capfd):
    logger = logging.getLogger("botmon.gateway")
    before = logger.level
    logger.setLevel(logging.WARNING)
    try:
        async with Suite(make_settings(), components=()) as suite:
            capfd.readouterr()
            assert (await http.get(f"{suite.base}/health/live")).status_code == 200
            await asyncio.sleep(0.3)
            assert '"message":"request"' not in capfd.readouterr().err
    finally:
        logger.setLevel(before)
