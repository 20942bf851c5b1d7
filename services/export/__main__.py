"""The export service: wiring only."""

from __future__ import annotations

import gc
import uuid
from dataclasses import dataclass

from botmon.export.v1 import export_service_pb2, export_service_pb2_grpc
from botmon.runtime.config import EnvSettings, Settings
from botmon.runtime.main import run_service
from botmon.runtime.registration import Registration
from botmon.runtime.scheduling import idle
from botmon.runtime.server import Binding, GrpcServer
from services.export.config import ExportSettings
from services.export.ledger import Ledger
from services.export.loop import Destination, Exports
from services.export.servicer import ExportServicer
from services.export.sinks import configured
from services.export.source import WINDOW, Source

SERVICE_NAME = export_service_pb2.DESCRIPTOR.services_by_name["ExportService"].full_name
#: The garbage collector's thresholds in the export process (generation 0 at 10 000
#: allocations, not 700).
GC_THRESHOLDS = (10_000, 10, 10)


@dataclass
class ExportServer(GrpcServer):
    """The gRPC server plus the destinations, which start once the server serves."""

    exports: Exports | None = None

    async def start(self) -> int:
        port = await super().start()
        if self.exports is not None:
            self.exports.start()
        return port


async def create_server(settings: Settings, *, address: str | None = None,
                        export_settings: ExportSettings | None = None,
                        sink_settings: dict[str, EnvSettings] | None = None) -> GrpcServer:
    """Build the export service's server (not started); the destinations start with it."""
    extra = export_settings or ExportSettings.from_env()
    chosen = configured(overrides=sink_settings)
    ledger = Ledger(settings.store_url, settings.grpc_deadline)
    await ledger.open()
    # Each destination's settings appear (secrets masked) in /debug/info.
    server = ExportServer("export", settings, [], address=address,
                          extra_settings=(extra, *(s for s, _ in chosen)))
    # A window is shared by several destinations; one destination keeps only its page.
    source = Source(server.backends, settings.grpc_deadline, fresh=extra.poll,
                    window=WINDOW if len(chosen) > 1 else extra.read_page)
    # The lease holder: this process, and this server within it (tests run two in one).
    holder = f"{settings.instance_id}-{uuid.uuid4().hex[:4]}"
    destinations = [Destination(sink, source, ledger, extra, holder) for _, sink in chosen]

    def register(name: str, destination: Destination) -> Registration:
        return Registration(server.backends, name, server.port, destination.details,
                            destination.status)

    exports = Exports(destinations, register)
    server.bindings = [Binding(SERVICE_NAME, ExportServicer(destinations, ledger, extra.interval),
                               export_service_pb2_grpc.add_ExportServiceServicer_to_server)]
    server.details = lambda: {"destinations": [d.name for d in destinations],
                              "leading": [d.name for d in destinations if d.leading]}

    async def close() -> None:
        await exports.stop()
        await ledger.close()

    server.on_stop.append(close)
    server.exports = exports
    return server


if __name__ == "__main__":
    # Below the services that answer requests: on a busy host, ingestion and the API get
    # the CPU first and the export catches up in what is left (its lag grows, never theirs).
    idle()
    # Every page read builds tens of thousands of containers that live until shipped; with
    # the default threshold (700) the collector ran through them and the process's own
    # modules over and over: 1.5–2.5 µs of CPU per entry shipped. What exists now is
    # never garbage, and collections wait for more allocations.
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    run_service("export", create_server)
