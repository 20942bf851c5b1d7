"""The gateway process: ``python -m gateway`` (or ``botmon serve gateway``).

One Sanic worker on ``BOTMON_HTTP_ADDR``; settings are checked before anything
starts (a bad value exits 2 naming the variable); logs are JSON lines; SIGTERM
or Ctrl-C drains in-flight requests and closes the backend clients.
"""

from __future__ import annotations

from botmon.runtime.lifeline import follow_supervisor
from botmon.runtime.logging import configure_logging
from botmon.runtime.main import load_settings
from gateway.app import create_app

__all__ = ["main"]


def main() -> None:
    """Serve the gateway in this process until SIGTERM or SIGINT."""
    settings = load_settings()
    follow_supervisor(settings.supervisor_pid)
    configure_logging("gateway", settings.log_level)
    app = create_app(settings, name="botmon_gateway")
    host, _, port = settings.http_addr.rpartition(":")
    # Sanic handles SIGTERM/SIGINT itself: stop accepting, drain, run after_server_stop.
    app.run(host=host.strip("[]"), port=int(port), single_process=True, access_log=False,
            motd=False)


if __name__ == "__main__":
    main()
