"""OpenAPI document and docs page, generated from the same route table."""

from __future__ import annotations

import json
import re

import pytest

from gateway.transcoding import load_routes
from tests.harness import Suite


@pytest.fixture
async def suite(make_settings):
    async with Suite(make_settings(), components=()) as suite:
        yield suite


async def test_openapi_lists_every_route_with_schemas(suite, http):
    r = await http.get(f"{suite.url}/openapi.json", headers=suite.headers("viewer"))
    assert r.status_code == 200
    doc = json.loads(r.text)
    assert doc["openapi"].startswith("3.")
    assert (await http.get(f"{suite.base}/openapi.json",
                           headers=suite.headers("viewer"))).json() == doc
    paths = doc["paths"]
    for route in load_routes():
        assert route.http_method.lower() in paths[route.template], route.template
    for extra in ("/api/v1/monitoring/health/live", "/api/v1/monitoring/health/ready",
                  "/ws/metrics", "/ws/logs", "/api/v1/monitoring/ws/metrics", "/loki/api/v1/push"):
        assert extra in paths
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    schemas = doc["components"]["schemas"]
    list_logs = paths["/api/v1/monitoring/logs"]["get"]
    names = {p["name"] for p in list_logs["parameters"]}
    assert {"level", "start_time", "limit", "metadata"} <= names
    assert list_logs["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/botmon.logs.v1.ListLogsResponse"}
    for code in ("401", "403", "429", "503"):
        assert code in list_logs["responses"]
    assert schemas["botmon.logs.v1.ListLogsResponse"]["properties"]["total"]["format"] == "int64"
    configure = paths["/api/v1/monitoring/alerts/configure"]["post"]
    assert configure["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/botmon.alerts.v1.AlertRule"}
    assert "201" in configure["responses"]
    assert paths["/api/v1/monitoring/health"]["get"]["security"] == []
    for gateway_route in ("/openapi.json", "/docs"):
        op = paths[gateway_route]["get"]
        assert "security" not in op and "401" in op["responses"], gateway_route
        assert "access_token" in {p["name"] for p in op["parameters"]}
    assert "Error" in schemas
    # Every reference resolves.
    for ref in set(re.findall(r'"#/components/(\w+)/([\w.]+)"', r.text)):
        assert ref[1] in doc["components"][ref[0]], ref


async def test_docs_page_is_self_contained(suite, http):
    r = await http.get(f"{suite.url}/docs", headers=suite.headers("viewer"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "openapi.json" in r.text
    assert not re.search(r'(src|href)="(https?:)?//', r.text)
    assert (await http.get(f"{suite.base}/docs", headers=suite.headers("viewer"))).status_code \
        == 200
    # The page hands its own access_token on to its fetch of openapi.json.
    assert 'pageParams.get("access_token")' in r.text
    assert '"?access_token=" + encodeURIComponent(pageToken)' in r.text
    assert r.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize("path", ["/openapi.json", "/docs", "/api/v1/monitoring/openapi.json",
                                  "/api/v1/monitoring/docs"])
async def test_docs_and_document_need_a_viewer_token(suite, http, path):
    """CONTRACT §3: Bearer on every route but the health probes; browsers use ?access_token=."""
    r = await http.get(f"{suite.url}{path}")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    r = await http.get(f"{suite.url}{path}", params={"access_token": "wrong-token-0123456789"})
    assert r.status_code == 401
    r = await http.get(f"{suite.url}{path}", params={"access_token": suite.tokens["viewer"]})
    assert r.status_code == 200
    r = await http.get(f"{suite.url}{path}", headers=suite.headers("viewer"))
    assert r.status_code == 200


async def test_access_token_query_is_not_taken_by_other_routes(suite, http):
    r = await http.get(f"{suite.base}/status", params={"access_token": suite.tokens["admin"]})
    assert r.status_code == 401
