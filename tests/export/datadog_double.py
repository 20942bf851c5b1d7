"""A local stand-in for Datadog's v2 intake that checks what it receives as Datadog documents it.

``POST /api/v2/series`` and ``POST /api/v2/logs``: the ``DD-API-KEY`` header (403
otherwise), ``Content-Type: application/json``, the ``Content-Encoding`` (gzip or
deflate, checked by decompressing the bytes as sent), the documented size limits
(series: 500 KB compressed, 5 MB decompressed; logs: 5 MB uncompressed, 1,000
entries, 1 MB per entry), and the body against the JSON Schemas in
``datadog_schemas/`` written from the v2 API reference. A valid request is
answered 202 and recorded; an invalid one 400/413/415 with Datadog's
``{"errors": [...]}`` shape, and recorded in ``invalid``. Failures can be
scripted per path (``fail_next``).
"""

from __future__ import annotations

import gzip
import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
from aiohttp import web

SCHEMAS = Path(__file__).with_name("datadog_schemas")
SERIES_PATH, LOGS_PATH = "/api/v2/series", "/api/v2/logs"
LIMITS = {SERIES_PATH: {"compressed": 512_000, "decompressed": 5_242_880},
          LOGS_PATH: {"compressed": None, "decompressed": 5_000_000}}
MAX_LOG_ENTRY = 1_000_000


def _validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / name).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


class Refusal(Exception):
    def __init__(self, status: int, *errors: str):
        super().__init__(errors[0] if errors else "")
        self.status, self.errors = status, list(errors)


@dataclass
class DatadogDouble:
    api_key: str
    #: Every series and every log item accepted, in arrival order.
    series: list[dict[str, Any]] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)
    #: Requests refused, as (path, errors).
    invalid: list[tuple[str, list[str]]] = field(default_factory=list)
    #: Every request, as (path, headers, compressed size).
    requests: list[tuple[str, dict[str, str], int]] = field(default_factory=list)
    url: str = ""
    _script: dict[str, list[tuple[int, dict[str, str]] | None]] = field(default_factory=dict)
    _runner: web.AppRunner | None = None
    _validators: dict[str, jsonschema.Draft202012Validator] = field(default_factory=lambda: {
        SERIES_PATH: _validator("series.json"), LOGS_PATH: _validator("logs.json")})

    def fail_next(self, path: str, status: int, headers: dict[str, str] | None = None, *,
                  after: int = 0) -> None:
        """Answer ``status`` to a request on ``path``, once ``after`` more were handled."""
        self._script.setdefault(path, []).extend([None] * after + [(status, headers or {})])

    async def start(self) -> str:
        app = web.Application(client_max_size=20 * 1024 * 1024)
        app.router.add_post(SERIES_PATH, self._intake)
        app.router.add_post(LOGS_PATH, self._intake)
        self._runner = web.AppRunner(app, auto_decompress=False, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _intake(self, request: web.Request) -> web.Response:
        path = request.path
        raw = await request.read()
        self.requests.append((path, dict(request.headers), len(raw)))
        scripted = self._script.get(path) and self._script[path].pop(0)
        if scripted:
            status, headers = scripted
            return web.json_response({"errors": ["scripted"]}, status=status, headers=headers)
        try:
            if request.headers.get("DD-API-KEY") != self.api_key:
                raise Refusal(403, "Forbidden")
            if request.content_type != "application/json":
                raise Refusal(415, f"unsupported Content-Type {request.content_type!r}")
            body = self._decompress(path, request.headers.get("Content-Encoding", ""), raw)
            try:
                payload = json.loads(body)
            except ValueError:
                raise Refusal(400, "Payload is not in the expected format: invalid JSON") from None
            problems = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                        for e in self._validators[path].iter_errors(payload)]
            if problems:
                raise Refusal(400, *problems[:10])
            if path == LOGS_PATH:
                for item in payload:
                    if len(json.dumps(item).encode()) > MAX_LOG_ENTRY:
                        raise Refusal(413, "a log entry is larger than 1 MB")
        except Refusal as refusal:
            self.invalid.append((path, refusal.errors))
            return web.json_response({"errors": refusal.errors}, status=refusal.status)
        if path == SERIES_PATH:
            self.series.extend(payload["series"])
            return web.json_response({"errors": []}, status=202)
        self.logs.extend(payload)
        return web.json_response({}, status=202)

    @staticmethod
    def _decompress(path: str, encoding: str, raw: bytes) -> bytes:
        limits = LIMITS[path]
        if limits["compressed"] and len(raw) > limits["compressed"]:
            raise Refusal(413, "Payload too large")
        try:
            if encoding == "gzip":
                body = gzip.decompress(raw)
            elif encoding == "deflate":
                body = zlib.decompress(raw)
            elif encoding in ("", "identity"):
                body = raw
            else:
                raise Refusal(415, f"unsupported Content-Encoding {encoding!r}")
        except (OSError, zlib.error, EOFError):
            raise Refusal(400, f"body is not valid {encoding}") from None
        if len(body) > limits["decompressed"]:
            raise Refusal(413, "Payload too large")
        return body

    def points(self, metric: str, **tags: str) -> list[tuple[int, float, dict[str, Any]]]:
        """(type, value, series) of every accepted point of ``metric`` carrying ``tags``."""
        wanted = {f"{k}:{v}" for k, v in tags.items()}
        return [(s.get("type", 0), p["value"], s) for s in self.series
                if s["metric"] == metric and wanted <= set(s.get("tags", ()))
                for p in s["points"]]
