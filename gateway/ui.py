"""The operator console at ``/ui/``: the static files of ``gateway/console`` (CONTRACT.md §12).

The console is a client of the public API like any other: these routes serve
files only, need no token (the page asks for one and sends it to the API), and
every answer carries a Content-Security-Policy that allows nothing but this
origin — no inline script or style, no remote host.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from sanic import Request, Sanic
from sanic.response import HTTPResponse, redirect

from gateway.errors import GatewayError
from gateway.limits import rate_class

__all__ = ["CONSOLE_DIR", "CONTENT_SECURITY_POLICY", "add_console_routes"]

CONSOLE_DIR = Path(__file__).with_name("console")
#: 'self' also covers ws:/wss: to this host and port (CSP Level 3), which the live views use.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'")
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml", ".txt": "text/plain"}
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    # Files keep their names across releases: the browser revalidates each use (304 by ETag).
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True)
class _File:
    body: bytes
    content_type: str
    etag: str


def _load(root: Path) -> dict[str, _File]:
    """Every file under ``root`` by its path relative to it, read once at start."""
    files = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        body = path.read_bytes()
        kind = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "text/plain"
        files[path.relative_to(root).as_posix()] = _File(
            body, kind, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
    return files


def add_console_routes(app: Sanic, root: Path = CONSOLE_DIR) -> None:
    """``GET /ui`` (redirect), ``/ui/`` and ``/ui/<file>``; public, in the ``default`` rate class."""
    files = _load(root)

    async def index_redirect(request: Request) -> HTTPResponse:
        return redirect("/ui/", status=308)

    async def serve(request: Request, path: str = "index.html") -> HTTPResponse:
        found = files.get(path)
        if found is None:
            raise GatewayError(404, f"no console file {path!r}")
        headers = {**_HEADERS, "ETag": found.etag}
        if found.etag in request.headers.get("if-none-match", ""):
            return HTTPResponse(status=304, headers=headers)
        return HTTPResponse(found.body, headers=headers, content_type=found.content_type)

    # Public (the page itself asks for the token), rate-limited like any other route.
    for handler, path, template, name in (
            (index_redirect, "/ui", "/ui", "console_redirect"),
            (serve, "/ui/", "/ui/", "console_index"),
            (serve, "/ui/<path:path>", "/ui/{path}", "console_file")):
        app.add_route(handler, path, methods=["GET"], name=name, strict_slashes=True,
                      ctx_template=template, ctx_role="viewer", ctx_public=True,
                      ctx_rate_class=rate_class("GET", template), ctx_query_token=False)
