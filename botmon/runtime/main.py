"""Process entry for one component: settings, logging, serve until SIGTERM."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

from botmon.runtime.config import ConfigError, Settings
from botmon.runtime.lifeline import follow_supervisor
from botmon.runtime.logging import configure_logging
from botmon.runtime.server import GrpcServer, run_until_signal

__all__ = ["SWITCH_INTERVAL", "load_settings", "run_service"]

#: The GIL switch interval of a service process (Python's default is 5 ms). Each
#: service runs its store work in threads beside the event loop; a thread that comes
#: back from SQLite or a socket with results waits for the GIL for up to this long
#: while the loop validates the next batch, so 5 ms stalls group commit behind ingest.
SWITCH_INTERVAL = 0.0005


def load_settings() -> Settings:
    """Settings from the environment; a bad value exits with one line naming it."""
    try:
        return Settings.from_env()
    except ConfigError as exc:
        print(f"botmon: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def run_service(component: str,
                create_server: Callable[[Settings], Awaitable[GrpcServer]]) -> None:
    """Run one gRPC service in this process until SIGTERM or Ctrl-C."""
    settings = load_settings()
    follow_supervisor(settings.supervisor_pid)
    configure_logging(component, settings.log_level)
    sys.setswitchinterval(SWITCH_INTERVAL)

    async def main() -> None:
        try:
            server = await create_server(settings)
        except ConfigError as exc:
            print(f"botmon: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        await run_until_signal(server)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
