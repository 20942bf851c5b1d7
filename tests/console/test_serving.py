"""How the gateway serves the console: files, types, caching, CSP, and the caller's role."""

from __future__ import annotations

import re

import httpx
import pytest

from gateway.ui import CONSOLE_DIR
from tests.harness import Suite


@pytest.fixture
async def suite(make_settings):
    async with Suite(make_settings(), components=("health",)) as running:
        yield running


@pytest.fixture
async def http():
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def test_ui_redirects_to_the_index_served_under_a_strict_policy(suite, http):
    r = await http.get(f"{suite.url}/ui")
    assert r.status_code == 308 and r.headers["location"] == "/ui/"
    r = await http.get(f"{suite.url}/ui/")  # no token: the page asks for one
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.text == (CONSOLE_DIR / "index.html").read_text()
    policy = dict(part.strip().split(" ", 1) for part in
                  r.headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'self'" and policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'" and policy["connect-src"] == "'self'"
    assert policy["object-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
    assert "unsafe" not in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(("path", "kind"), [
    ("js/main.js", "text/javascript; charset=utf-8"),
    ("console.css", "text/css; charset=utf-8"),
    ("vendor/uPlot.esm.js", "text/javascript; charset=utf-8"),
    ("icon.svg", "image/svg+xml"),
])
async def test_files_have_their_type_and_revalidate_by_etag(suite, http, path, kind):
    r = await http.get(f"{suite.url}/ui/{path}")
    assert r.status_code == 200 and r.headers["content-type"] == kind
    assert r.content == (CONSOLE_DIR / path).read_bytes()
    assert r.headers["cache-control"] == "no-cache"
    again = await http.get(f"{suite.url}/ui/{path}", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


@pytest.mark.parametrize("path", ["nope.js", "../gateway/app.py", "js/../../ui.py", "%2e%2e/app.py"])
async def test_only_console_files_are_served(suite, http, path):
    r = await http.get(f"{suite.url}/ui/{path}")
    assert r.status_code == 404
    assert r.json()["error"]["status"] == "NOT_FOUND"


def test_no_inline_script_style_or_handler_that_the_policy_would_block():
    html = (CONSOLE_DIR / "index.html").read_text()
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag, f"inline script {tag}"
    assert "<style" not in html
    assert not re.search(r"\s(style|on[a-z]+)=", html)
    for script in (CONSOLE_DIR / "js").glob("*.js"):
        source = script.read_text()
        assert ".innerHTML" not in source and "eval(" not in source, script.name
        # No remote origin: the only absolute URLs are built from location.
        assert not re.search(r"https?://", source), script.name


async def test_every_authenticated_answer_names_the_callers_role(suite, http):
    for role in ("viewer", "operator", "admin"):
        r = await http.get(f"{suite.base}/health/detailed", headers=suite.headers(role))
        assert r.headers["x-botmon-role"] == role
        assert r.headers["x-botmon-subject"] == f"test-{role}"
    r = await http.get(f"{suite.base}/health")  # public: no caller, no role
    assert "x-botmon-role" not in r.headers
