"""The data dir's audit records (botmon.runtime.audit), stored as ``botmon.audit`` entries.

Drained when the service starts and every ``poll`` seconds (a minute) after. Records
arrive only when a process sharing the data dir bootstraps a secret, at that process's
start, which may come after this service's: a minute bounds how late such an entry is
stored (its timestamp is the bootstrap's) without every replica globbing the folder every
few seconds for its whole life. A record's file is deleted only once its entry is
durable, so a crash in between stores it twice, never not at all.
"""

from __future__ import annotations

import logging

from botmon.runtime.audit import DataDirOutbox
from botmon.runtime.periodic import Periodic
from services.logs.committer import GroupCommitter
from services.logs.ingest import validate_entries

__all__ = ["OutboxDrain"]

log = logging.getLogger("botmon.logs.audit")


class OutboxDrain(Periodic):
    """Moves the records of ``outbox`` into the logs through ``committer``."""

    def __init__(self, outbox: DataDirOutbox, committer: GroupCommitter, poll: float = 60.0):
        super().__init__("logs-audit-outbox", poll)
        self.outbox = outbox
        self.committer = committer

    def failed(self, exc: Exception) -> None:
        log.error("audit records of the data dir not stored yet; retrying", exc_info=exc)

    async def run_once(self) -> None:
        """Store the waiting records."""
        pending = self.outbox.pending()
        if not pending:
            return
        batch = validate_entries([entry for _, entry in pending])
        if batch.errors:
            raise ValueError(f"audit records in {self.outbox.path} were refused: "
                             + "; ".join(e.message for e in batch.errors))
        await self.committer.submit(batch.entries)
        for path, _ in pending:
            path.unlink(missing_ok=True)
