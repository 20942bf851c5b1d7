"""The vendors' intake APIs for ``bench_export``, in a process of their own.

    python -m benchmarks.standins ADDRESS_FILE

serves, on one port, New Relic's OTLP/HTTP (``/v1/logs``, ``/v1/metrics``) and
Datadog's v2 intake (``/api/v2/logs``, ``/api/v2/series``), each accepting what it
is sent, and on another the Elasticsearch stand-in of the tests
(``tests/export/elasticsearch_double.py``: bulk API, data streams, templates),
as no Elasticsearch installs on this machine. ``ADDRESS_FILE`` receives
``{"http": base URL, "elasticsearch": base URL}`` once both listen; SIGTERM stops it.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from aiohttp import web

from tests.export.elasticsearch_double import ElasticsearchDouble

__all__ = ["main"]


async def _accept(request: web.Request) -> web.Response:
    await request.read()
    if request.path.startswith("/v1/"):
        return web.Response(content_type="application/x-protobuf")
    return web.json_response({}, status=202)


async def _serve(address_file: Path) -> None:
    app = web.Application(client_max_size=64 * 2**20)
    for path in ("/v1/logs", "/v1/metrics", "/api/v2/logs", "/api/v2/series"):
        app.router.add_post(path, _accept)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    http_port = site._server.sockets[0].getsockname()[1]
    elasticsearch = ElasticsearchDouble()
    await elasticsearch.start()
    written = address_file.with_suffix(".tmp")
    await asyncio.to_thread(written.write_text, json.dumps(
        {"http": f"http://127.0.0.1:{http_port}", "elasticsearch": elasticsearch.url}))
    written.rename(address_file)  # whole, or not there yet
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await elasticsearch.stop()
    await runner.cleanup()


def main() -> None:
    asyncio.run(_serve(Path(sys.argv[1])))


if __name__ == "__main__":
    main()
