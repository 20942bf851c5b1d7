"""The health service's server: ready only once the first probe round has finished."""

from __future__ import annotations

from botmon.runtime.server import GrpcServer
from services.health.prober import Prober, Snapshot
from services.health.status import StatusBoard
from services.health.status_view import StatusView

__all__ = ["HealthServer"]


class HealthServer(GrpcServer):
    """A :class:`GrpcServer` whose ``grpc.health.v1`` status is NOT_SERVING until the
    prober has results, and which runs the prober, the status view and the
    self-registration."""

    def __init__(self, *args, prober: Prober, board: StatusBoard, view: StatusView, **kwargs):
        super().__init__(*args, **kwargs)
        self.prober = prober
        self.board = board
        self.view = view
        prober.on_round.append(self._round_done)

    async def start(self) -> int:
        self.prober.start()
        port = await super().start()
        self.board.start(port)
        self.view.start()
        return port

    async def set_serving(self, serving: bool) -> None:
        await super().set_serving(serving and self.prober.ready)

    async def _round_done(self, snapshot: Snapshot) -> None:
        self.view.changed()
        if snapshot.round == 1 and self.server is not None:
            await self.set_serving(True)

    async def stop(self, grace: float | None = None) -> None:
        # Watch streams never end by themselves; ending them lets the drain finish.
        self.prober.end_watches()
        self.view.end_watches()
        await super().stop(grace)
