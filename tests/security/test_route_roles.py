"""Every route of the gateway x every caller -> the allow/deny CONTRACT §3 promises.

The routes come from the running gateway's own route table, so a route added
later is covered without editing this file; the expected role comes from the
contract's wording (tests/security/contract.py), not from the gateway's code.
No backend runs: an allowed call ends in 503 (or a gateway answer), a refused
one in 401/403 before any backend is asked.
"""

from __future__ import annotations

import asyncio
import re

import pytest
import websockets

from botmon.runtime.config import Settings
from tests.harness import Suite
from tests.security.contract import ROLES, expected_role, rank

CALLERS = (None, *ROLES)


@pytest.fixture(scope="module")
def suite_settings(tmp_path_factory):
    return Settings.from_env({}, data_dir=tmp_path_factory.mktemp("roles"))


@pytest.fixture
async def suite(suite_settings):
    async with Suite(suite_settings, components=()) as suite:
        yield suite


def table(suite) -> list[tuple[str, str, bool]]:
    """(method, template, is_websocket) of every route the gateway serves."""
    rows = set()
    for route in suite.app.router.routes:
        template = getattr(route.ctx, "template", None)
        assert template is not None, f"route {route.path} has no template: auth cannot see it"
        for method in route.methods:
            rows.add((method, template, bool(route.extra.websocket)))
    return sorted(rows)


def verdict(role: str | None, needed: str | None) -> str:
    if needed is None:
        return "allow"
    if role is None:
        return "401"
    return "403" if rank(role) < rank(needed) else "allow"


def concrete(template: str) -> str:
    # A resource that does not exist: authorization must still come before existence.
    return re.sub(r"\{[^}]+\}", "does-not-exist", template)


async def test_every_route_by_every_caller(suite, http):
    rows = table(suite)
    assert len(rows) >= 30, rows
    # Calls to a backend that is down take a moment each; ask them all at once.
    results = await asyncio.gather(*(_check(suite, http, method, template, is_ws, role)
                                     for method, template, is_ws in rows for role in CALLERS))
    problems = [problem for problem in results if problem]
    assert not problems, "\n".join(problems)


async def _check(suite, http, method: str, template: str, is_ws: bool,
                 role: str | None) -> str | None:
    """What is wrong with how ``role`` is treated on this route, or None."""
    headers = suite.headers(role) if role else {}
    want = verdict(role, expected_role(method, template))
    if is_ws:
        got = await _ws_status(suite, template, headers)
    else:
        body = b"{}" if method in ("POST", "PUT", "PATCH") else None
        response = await http.request(method, suite.url + concrete(template), content=body,
                                      headers={**headers, "Content-Type": "application/json"})
        got = str(response.status_code)
        if got == "401" and not response.headers.get("www-authenticate", "").startswith(
                "Bearer"):
            return f"{method} {template}: 401 without WWW-Authenticate: Bearer"
    if (got == want) if want != "allow" else got not in ("401", "403"):
        return None
    return f"{method} {template} as {role or 'nobody'}: got {got}, contract says {want}"


async def _ws_status(suite, template: str, headers: dict[str, str]) -> str:
    try:
        async with websockets.connect(suite.ws_url + template, additional_headers=headers,
                                      open_timeout=5, close_timeout=1):
            return "101"
    except websockets.InvalidStatus as refused:
        return str(refused.response.status_code)


def test_contract_table_names_the_documented_roles():
    """Spot checks of the contract table itself, so a typo there cannot hide a hole."""
    base = "/api/v1/monitoring"
    assert expected_role("GET", f"{base}/health") is None
    assert expected_role("GET", f"{base}/health/detailed") == "viewer"
    assert expected_role("GET", f"{base}/debug/info") == "admin"
    assert expected_role("POST", f"{base}/alerts/configure") == "operator"
    assert expected_role("DELETE", f"{base}/alerts/rules/{{name}}") == "operator"
    assert expected_role("POST", "/loki/api/v1/push") == "operator"
    assert expected_role("GET", "/openapi.json") == "viewer"
    assert expected_role("GET", "/ws/logs") == "viewer"


async def test_websocket_query_token_is_checked_like_the_header(suite):
    for token, want in ((suite.tokens["viewer"], "101"), ("x" * 40, "401")):
        url = f"{suite.ws_url}/ws/logs?access_token={token}"
        try:
            async with websockets.connect(url, open_timeout=5, close_timeout=1):
                got = "101"
        except websockets.InvalidStatus as refused:
            got = str(refused.response.status_code)
        assert got == want
