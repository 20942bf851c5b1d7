"""Group commit: batches that arrive together share one durable store transaction.

Each caller awaits its batch's commit, so an acknowledgement always follows
the fsync (or PostgreSQL's WAL flush) that made the batch durable. While one
commit runs, new batches queue; the next commit takes them all (up to
``max_rows``), so many concurrent writers pay for one fsync instead of one
each. After a commit the entries and their ids go to ``on_commit`` (the live
tails). While no batch waits, the committer has the store work off index work
it deferred from commits (:meth:`LogStore.index_backlog`), a step at a time, so
a batch arriving meanwhile waits for one step at most.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence

from botmon.runtime.errors import Unavailable
from services.logs.row import NewEntry
from services.logs.store import LogStore

__all__ = ["GroupCommitter"]

log = logging.getLogger("botmon.logs.committer")


class GroupCommitter:
    """Merges concurrently submitted batches into single store transactions."""

    def __init__(self, store: LogStore, *, max_rows: int = 50_000,
                 on_commit: Callable[[list[NewEntry], Sequence[int]], None] | None = None):
        self.store = store
        self.max_rows = max_rows
        self.on_commit = on_commit
        self.commits = 0
        self.committed_rows = 0
        self._pending: deque[tuple[list[NewEntry], asyncio.Future]] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="logs-group-commit")

    async def stop(self) -> None:
        """Commit what is queued, then stop."""
        self._stopping = True
        self._wake.set()
        if self._task:
            await asyncio.gather(self._task, return_exceptions=True)

    async def submit(self, entries: list[NewEntry]) -> None:
        """Store ``entries``; returns once they are durable."""
        if not entries:
            return
        future = asyncio.get_running_loop().create_future()
        self._pending.append((entries, future))
        self._wake.set()
        # Shielded: a caller that goes away does not cancel a commit others share.
        await asyncio.shield(future)

    def _take(self) -> list[tuple[list[NewEntry], asyncio.Future]]:
        group = [self._pending.popleft()]
        count = len(group[0][0])
        while self._pending and count + len(self._pending[0][0]) <= self.max_rows:
            rows, future = self._pending.popleft()
            group.append((rows, future))
            count += len(rows)
        return group

    async def _run(self) -> None:
        while not self._stopping or self._pending:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                group = self._take()
                rows = group[0][0] if len(group) == 1 else [e for b, _ in group for e in b]
                try:
                    ids = await self.store.insert(rows)
                except Exception as exc:
                    log.exception("log store commit failed")
                    error = Unavailable(f"the log store did not commit the batch ({exc}); "
                                        "nothing of it was stored, retry later")
                    for _, future in group:
                        if not future.done():
                            future.set_exception(error)
                    continue
                self.commits += 1
                self.committed_rows += len(rows)
                for _, future in group:
                    if not future.done():
                        future.set_result(None)
                if self.on_commit:
                    self.on_commit(rows, ids)
            while not self._pending and not self._stopping and await self._index_backlog():
                pass

    async def _index_backlog(self) -> bool:
        try:
            return await self.store.index_backlog()
        except Exception:
            # Commits go on; the backlog is retried after the next one.
            log.exception("log store index step failed")
            return False
