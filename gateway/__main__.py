"""The gateway process: ``python -m gateway`` (or ``botmon serve gateway``).

``BOTMON_GATEWAY_WORKERS`` Sanic workers (default 1, in this process) on
``BOTMON_HTTP_ADDR``; several are processes sharing the port, each with its own
backend channels, built by the same factory (rate limits stay exact across them
through Redis; without ``BOTMON_REDIS_URL`` each worker counts alone). Settings
are checked before anything starts (a bad value exits 2 naming the variable);
logs are JSON lines; SIGTERM or Ctrl-C drains in-flight requests and closes the
backend clients. With ``BOTMON_TLS_CERT`` it serves HTTPS; a single worker reloads a
rotated certificate when its files change or on SIGHUP.
"""

from __future__ import annotations

import asyncio
import signal
from functools import partial

from sanic import Sanic
from sanic.worker.loader import AppLoader

from botmon.runtime.lifeline import follow_supervisor
from botmon.runtime.logging import configure_logging
from botmon.runtime.main import load_settings
from gateway.app import create_app, reload_certificates, worker_app

__all__ = ["main"]


def main() -> None:
    """Serve the gateway in this process until SIGTERM or SIGINT."""
    settings = load_settings()
    follow_supervisor(settings.supervisor_pid)
    configure_logging("gateway", settings.log_level)
    host, _, port = settings.http_addr.rpartition(":")
    options = {"host": host.strip("[]"), "port": int(port), "access_log": False, "motd": False}
    if settings.gateway_workers == 1:
        app = create_app(settings, name="botmon_gateway")

        @app.after_server_start
        async def reload_on_sighup(app) -> None:
            asyncio.get_running_loop().add_signal_handler(
                signal.SIGHUP, reload_certificates, app, True)

        # Sanic handles SIGTERM/SIGINT itself: stop accepting, drain, run after_server_stop.
        app.run(single_process=True, ssl=app.ctx.ssl, **options)
        return
    loader = AppLoader(factory=partial(worker_app, settings))
    app = loader.load()  # in this process first: the admin token exists before workers start
    # Worker processes load the certificate files themselves (read again when they restart).
    tls = {"cert": str(settings.tls_cert), "key": str(settings.tls_key)} \
        if settings.tls_cert else None
    app.prepare(workers=settings.gateway_workers, ssl=tls, **options)
    Sanic.serve(primary=app, app_loader=loader)


if __name__ == "__main__":
    main()
