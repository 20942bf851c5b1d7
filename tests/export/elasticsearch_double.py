"""A local stand-in for an Elasticsearch 8 cluster, faithful where the export relies on it.

What it implements as Elasticsearch does (and what ``test_elasticsearch_double``
proves with the official client): the ``X-Elastic-Product`` header on every answer,
the versioned ``compatible-with`` media types, API key and basic authentication,
``_index_template`` (HEAD/GET/PUT), data streams created from a matching template
(``create`` only, ``@timestamp`` required), the NDJSON ``_bulk`` API with a result
and status per item and the ``errors`` flag, ``_id`` conflicts (409), mapping
conflicts (400) from the template's and dynamically added field types, ``_count``
and ``_data_stream``. Faults are scripted per document id (``fail_item``) or per
request (``fail_next``). Every document received is recorded, accepted or not.
"""

from __future__ import annotations

import base64
import datetime
import fnmatch
import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

PRODUCT = {"X-Elastic-Product": "Elasticsearch"}
FIELD_TYPES = {"keyword", "constant_keyword", "text", "match_only_text", "date", "date_nanos",
               "long", "integer", "double", "float", "boolean", "object", "histogram"}
#: strict_date_optional_time_nanos, the default format of date and date_nanos fields.
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}([.,]\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?")
_ITEM_ERRORS = {429: "es_rejected_execution_exception", 503: "unavailable_shards_exception",
                400: "document_parsing_exception"}


class Refusal(Exception):
    def __init__(self, status: int, kind: str, reason: str):
        super().__init__(reason)
        self.status, self.kind, self.reason = status, kind, reason

    def body(self) -> dict[str, Any]:
        cause = {"type": self.kind, "reason": self.reason}
        return {"error": {"root_cause": [cause], **cause}, "status": self.status}


@dataclass
class Index:
    name: str
    data_stream: bool
    template: str | None
    mapping: dict[str, str] = field(default_factory=dict)  # dotted path -> field type
    dynamic: list[tuple[str, str]] = field(default_factory=list)  # (path glob, type)
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Where documents go: a data stream's first backing index, named for the day the
    #: stream was created (as Elasticsearch names it), or the index itself.
    backing: str = ""

    def __post_init__(self) -> None:
        day = datetime.datetime.now(datetime.UTC).strftime("%Y.%m.%d")
        self.backing = f".ds-{self.name}-{day}-000001" if self.data_stream else self.name


def _loads(text: bytes) -> Any:
    """JSON as Elasticsearch reads it; orjson first (the double stands in for a remote
    cluster in ``bench_export``, where its CPU is the benchmark's, not botmon's), the
    standard library for what orjson refuses and Elasticsearch takes (a lone surrogate)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


@dataclass
class ElasticsearchDouble:
    api_key: str | None = None
    #: False plays a server that is not Elasticsearch (no X-Elastic-Product header).
    product: bool = True
    basic: tuple[str, str] | None = None
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)
    indices: dict[str, Index] = field(default_factory=dict)
    #: Every (index, id, document) a bulk request carried, accepted or not.
    received: list[tuple[str, str | None, dict[str, Any]]] = field(default_factory=list)
    bulk_requests: int = 0
    #: The Content-Encoding of each bulk request ("" when sent uncompressed).
    bulk_encodings: list[str] = field(default_factory=list)
    _item_faults: list[tuple[Any, list[int]]] = field(default_factory=list)
    _request_faults: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    # -- scripting ---------------------------------------------------------------------
    def fail_item(self, doc_id: str, *statuses: int) -> None:
        """Answer the next bulk items carrying ``doc_id`` with these statuses, in turn."""
        self.fail_where(lambda item_id, _: item_id == doc_id, *statuses)

    def fail_where(self, predicate, *statuses: int) -> None:
        """Answer the next items for which ``predicate(id, document)`` holds with ``statuses``."""
        self._item_faults.append((predicate, list(statuses)))

    def fail_next(self, status: int, headers: dict[str, str] | None = None) -> None:
        """Answer the next bulk request as a whole with ``status``."""
        self._request_faults.append((status, headers or {}))

    def documents(self, index: str) -> list[dict[str, Any]]:
        return list(self.indices[index].docs.values()) if index in self.indices else []

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> str:
        app = web.Application(middlewares=[self._middleware], client_max_size=200 * 1024 * 1024)
        app.router.add_get("/", self._info)
        app.router.add_route("*", "/_index_template/{name}", self._template)
        app.router.add_get("/_data_stream/{name}", self._data_stream)
        app.router.add_route("POST", "/_bulk", self._bulk)
        app.router.add_route("PUT", "/_bulk", self._bulk)
        app.router.add_route("POST", "/{index}/_bulk", self._bulk)
        app.router.add_route("PUT", "/{index}/_bulk", self._bulk)
        app.router.add_route("GET", "/{index}/_count", self._count)
        app.router.add_route("POST", "/{index}/_count", self._count)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- HTTP --------------------------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler) -> web.StreamResponse:
        compat = "compatible-with=" in request.headers.get("Accept", "")
        try:
            self._check_media_types(request)
            self._authenticate(request)
            response = await handler(request)
        except Refusal as refusal:
            extra = {"WWW-Authenticate": 'ApiKey, Basic realm="security"'} \
                if refusal.status == 401 else {}
            response = web.json_response(refusal.body(), status=refusal.status, headers=extra)
        if self.product:
            response.headers.update(PRODUCT)
        if compat and response.content_type == "application/json":
            response.content_type = "application/vnd.elasticsearch+json"
            response.headers["Content-Type"] += ";compatible-with=8"
        return response

    @staticmethod
    def _check_media_types(request: web.Request) -> None:
        for header in ("Accept", "Content-Type"):
            value = request.headers.get(header, "")
            if "compatible-with=" in value and value.rsplit("=", 1)[1].strip() not in ("7", "8"):
                raise Refusal(400, "media_type_header_exception",
                              f"Invalid media-type value on headers [{header}]")
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        if request.body_exists and content_type not in (
                "application/json", "application/x-ndjson", "application/vnd.elasticsearch+json",
                "application/vnd.elasticsearch+x-ndjson"):
            raise Refusal(406, "media_type_header_exception",
                          f"Content-Type header [{content_type}] is not supported")

    def _authenticate(self, request: web.Request) -> None:
        if self.api_key is None and self.basic is None:
            return
        given = request.headers.get("Authorization", "")
        accepted = []
        if self.api_key is not None:
            accepted.append(f"ApiKey {self.api_key}")
        if self.basic is not None:
            accepted.append("Basic " + base64.b64encode(":".join(self.basic).encode()).decode())
        if given not in accepted:
            raise Refusal(401, "security_exception",
                          "missing authentication credentials for REST request [/_bulk]"
                          if not given else "unable to authenticate user for REST request")

    async def _info(self, request: web.Request) -> web.Response:
        return web.json_response({
            "name": "double", "cluster_name": "botmon-test", "cluster_uuid": "double",
            "version": {"number": "8.15.0", "build_flavor": "default", "build_type": "docker",
                        "lucene_version": "9.11.1", "minimum_wire_compatibility_version": "7.17.0",
                        "minimum_index_compatibility_version": "7.0.0"},
            "tagline": "You Know, for Search"})

    async def _template(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if request.method == "HEAD":
            return web.Response(status=200 if name in self.templates else 404)
        if request.method == "GET":
            if name not in self.templates:
                raise Refusal(404, "resource_not_found_exception",
                              f"index template matching [{name}] not found")
            return web.json_response({"index_templates": [
                {"name": name, "index_template": self.templates[name]}]})
        if request.method != "PUT":
            raise Refusal(405, "illegal_argument_exception", "method not allowed")
        body = await _json_body(request)
        patterns = body.get("index_patterns")
        if isinstance(patterns, str):
            patterns = [patterns]
        if not patterns or not all(isinstance(p, str) for p in patterns):
            raise Refusal(400, "action_request_validation_exception",
                          "Validation Failed: 1: index patterns are missing;")
        _flatten_mapping(body.get("template", {}).get("mappings", {}))  # raises on bad types
        self.templates[name] = {**body, "index_patterns": patterns}
        return web.json_response({"acknowledged": True})

    async def _data_stream(self, request: web.Request) -> web.Response:
        index = self.indices.get(request.match_info["name"])
        if index is None or not index.data_stream:
            raise Refusal(404, "index_not_found_exception",
                          f"no such index [{request.match_info['name']}]")
        return web.json_response({"data_streams": [{
            "name": index.name, "timestamp_field": {"name": "@timestamp"},
            "indices": [{"index_name": index.backing, "index_uuid": "double"}],
            "generation": 1, "status": "GREEN", "template": index.template, "hidden": False}]})

    async def _count(self, request: web.Request) -> web.Response:
        index = self.indices.get(request.match_info["index"])
        if index is None:
            raise Refusal(404, "index_not_found_exception",
                          f"no such index [{request.match_info['index']}]")
        return web.json_response({"count": len(index.docs), "_shards": {
            "total": 1, "successful": 1, "skipped": 0, "failed": 0}})

    async def _bulk(self, request: web.Request) -> web.Response:
        self.bulk_requests += 1
        self.bulk_encodings.append(request.headers.get("Content-Encoding", ""))
        raw = await request.read()  # aiohttp inflates a gzip body itself
        if self._request_faults:
            status, headers = self._request_faults.pop(0)
            refusal = Refusal(status, _ITEM_ERRORS.get(status, "status_exception"), "scripted")
            return web.json_response(refusal.body(), status=status, headers=headers)
        if not raw.endswith(b"\n"):
            raise Refusal(400, "illegal_argument_exception",
                          "The bulk request must be terminated by a newline [\\n]")
        lines = raw.split(b"\n")[:-1]
        items, position = [], 0
        while position < len(lines):
            action, meta = _action(lines[position], position + 1)
            source = None
            if action != "delete":
                position += 1
                if position >= len(lines):
                    raise Refusal(400, "illegal_argument_exception",
                                  f"Validation Failed: 1: no requests added for [{action}];")
                source = lines[position]
            position += 1
            target = meta.get("_index") or request.match_info.get("index")
            if not target:
                raise Refusal(400, "action_request_validation_exception",
                              "Validation Failed: 1: index is missing;")
            items.append({action: self._write(action, target, meta.get("_id"), source)})
        errors = any(item[next(iter(item))]["status"] >= 300 for item in items)
        return web.json_response({"errors": errors, "took": 1, "items": items}, dumps=_dumps)

    # -- indexing ----------------------------------------------------------------------
    def _write(self, action: str, target: str, doc_id: str | None,
               source: bytes | None) -> dict[str, Any]:
        try:
            document = _loads(source) if source is not None else None
        except ValueError:
            document = None
        self.received.append((target, doc_id, document))
        index = self._resolve(target)
        result: dict[str, Any] = {"_index": index.backing, "_id": doc_id}
        try:
            if action not in ("create", "index"):
                raise Refusal(400, "illegal_argument_exception", f"unsupported [{action}]")
            if index.data_stream and action != "create":
                raise Refusal(400, "illegal_argument_exception",
                              "only write ops with an op_type of create are allowed in data streams")
            if not isinstance(document, dict):
                raise Refusal(400, "document_parsing_exception",
                              "[1:1] failed to parse: the source is not a JSON object")
            for predicate, statuses in self._item_faults:
                if statuses and predicate(doc_id, document):
                    status = statuses.pop(0)
                    raise Refusal(status, _ITEM_ERRORS.get(status, "status_exception"),
                                  "scripted")
            if index.data_stream and "@timestamp" not in document:
                raise Refusal(400, "document_parsing_exception",
                              "data stream timestamp field [@timestamp] is missing")
            if doc_id is not None and doc_id in index.docs and action == "create":
                raise Refusal(409, "version_conflict_engine_exception",
                              f"[{doc_id}]: version conflict, document already exists "
                              "(current version [1])")
            _map(index, document, "")
        except Refusal as refusal:
            return {**result, "status": refusal.status,
                    "error": {"type": refusal.kind, "reason": refusal.reason,
                              "index": index.backing}}
        doc_id = doc_id or secrets.token_urlsafe(15)
        index.docs[doc_id] = document
        return {**result, "_id": doc_id, "_version": 1, "result": "created", "status": 201,
                "_shards": {"total": 2, "successful": 1, "failed": 0},
                "_seq_no": len(index.docs) - 1, "_primary_term": 1}

    def _resolve(self, name: str) -> Index:
        if name in self.indices:
            return self.indices[name]
        matching = [(t.get("priority", 0), tname, t) for tname, t in self.templates.items()
                    if any(fnmatch.fnmatchcase(name, p) for p in t["index_patterns"])]
        index = Index(name, data_stream=False, template=None)
        if matching:
            _, tname, template = max(matching, key=lambda m: m[0])
            mappings = template.get("template", {}).get("mappings", {})
            index = Index(name, data_stream="data_stream" in template, template=tname,
                          mapping=_flatten_mapping(mappings),
                          dynamic=[(next(iter(d.values())).get("path_match", "*"),
                                    next(iter(d.values()))["mapping"]["type"])
                                   for d in mappings.get("dynamic_templates", [])])
        self.indices[name] = index
        return index


def _action(line: bytes, number: int) -> tuple[str, dict[str, Any]]:
    try:
        parsed = _loads(line)
    except ValueError:
        raise Refusal(400, "x_content_parse_exception",
                      f"[{number}:1] Unexpected character in action line") from None
    if not isinstance(parsed, dict) or len(parsed) != 1:
        raise Refusal(400, "illegal_argument_exception",
                      f"Malformed action/metadata line [{number}], expected a simple object")
    (action, meta), = parsed.items()
    if action not in ("index", "create", "update", "delete") or not isinstance(meta, dict):
        raise Refusal(400, "illegal_argument_exception",
                      f"Malformed action/metadata line [{number}], expected one of "
                      f"[create, delete, index, update] but found [{action}]")
    return action, meta


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.read())
    except ValueError:
        raise Refusal(400, "x_content_parse_exception", "request body is not JSON") from None
    if not isinstance(body, dict):
        raise Refusal(400, "x_content_parse_exception", "request body must be an object")
    return body


def _flatten_mapping(mappings: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Dotted path -> type of every declared field; an unknown type is a mapping error."""
    out: dict[str, str] = {}
    for name, spec in mappings.get("properties", {}).items():
        path = prefix + name
        kind = spec.get("type", "object")
        if kind not in FIELD_TYPES:
            raise Refusal(400, "mapper_parsing_exception",
                          f"No handler for type [{kind}] declared on field [{name}]")
        out[path] = kind
        if "properties" in spec:
            out.update(_flatten_mapping(spec, path + "."))
    return out


def _map(index: Index, value: Any, path: str) -> None:
    """Check ``value`` against the mapping at ``path``, adding dynamic fields as ES does."""
    known = index.mapping.get(path) if path else "object"
    if isinstance(value, dict) and known != "histogram":
        if known not in (None, "object"):
            raise Refusal(400, "document_parsing_exception",
                          f"failed to parse field [{path}] of type [{known}]: found an object")
        if path:
            index.mapping.setdefault(path, "object")
        for key, inner in value.items():
            _map(index, inner, f"{path}.{key}" if path else key)
        return
    if known == "object":
        raise Refusal(400, "document_parsing_exception",
                      f"object mapping for [{path}] tried to parse field [{path}] as object, "
                      "but found a concrete value")
    if known is None:
        dynamic = next((kind for glob, kind in index.dynamic
                        if fnmatch.fnmatchcase(path, glob)), None)
        index.mapping[path] = dynamic or _dynamic_type(value)
        return
    if not _fits(known, value):
        raise Refusal(400, "document_parsing_exception",
                      f"failed to parse field [{path}] of type [{known}]. "
                      f"Preview of field's value: '{value}'")


def _dynamic_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "float"
    return "text"


def _fits(kind: str, value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, list):
        return kind == "histogram" or all(_fits(kind, v) for v in value)
    if kind in ("long", "integer"):
        return isinstance(value, int | float) and not isinstance(value, bool) or \
            isinstance(value, str) and value.lstrip("-").isdigit()
    if kind in ("double", "float"):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind in ("date", "date_nanos"):
        return isinstance(value, int) or isinstance(value, str) and bool(_DATE.fullmatch(value))
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "histogram":
        values, counts = (value or {}).get("values"), (value or {}).get("counts")
        return (isinstance(values, list) and isinstance(counts, list)
                and len(values) == len(counts)
                and all(a < b for a, b in zip(values, values[1:], strict=False))
                and all(isinstance(c, int) and c >= 0 for c in counts))
    return not isinstance(value, dict)  # keyword and text take any scalar
