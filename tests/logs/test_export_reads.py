"""The export's reads (ReadLogsAfter) are served by a thread in the idle scheduling class on
SQLite, so that catching up after an outage gives way to ingest and queries on a busy machine."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from botmon.logs.v1 import logs_service_pb2 as pb
from tests.logs.support import entry, now


def _stat(tid: int) -> list[str]:
    # The fields of /proc/<pid>/task/<tid>/stat after the command's closing parenthesis.
    return Path(f"/proc/{os.getpid()}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()


def _sqlite_threads() -> dict[int, tuple[int, int]]:
    """(scheduling policy, CPU ticks) of each of this process's SQLite worker threads, by
    native id."""
    threads = {}
    for thread in threading.enumerate():
        if thread.name.startswith("sqlite-") and thread.native_id is not None:
            fields = _stat(thread.native_id)
            threads[thread.native_id] = (os.sched_getscheduler(thread.native_id),
                                         int(fields[11]) + int(fields[12]))
    return threads


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_export_reads_run_below_the_other_work(logs):
    await logs.write([entry(message=f"line {i} " + "x" * 200, ts=now()) for i in range(2000)])
    before = _sqlite_threads()
    background = [tid for tid, (policy, _) in before.items() if policy == os.SCHED_IDLE]
    # The writer and the readers in the process's own class; one thread below them.
    assert len(background) == 1 and len(before) >= 3, before
    assert all(policy == os.SCHED_OTHER for tid, (policy, _) in before.items()
               if tid not in background)
    for form in (pb.STORED_ENTRIES_FORMAT_MESSAGES, pb.STORED_ENTRIES_FORMAT_JSON) * 20:
        read = await logs.stub.ReadLogsAfter(
            pb.ReadLogsAfterRequest(page_size=2000, format=form), timeout=10)
        assert read.high_id >= 2000
    after = _sqlite_threads()
    used = {tid: after[tid][1] - ticks for tid, (_, ticks) in before.items()}
    # The reads' CPU is the background thread's, not the readers' that serve queries.
    assert used[background[0]] > sum(t for tid, t in used.items() if tid != background[0]), used
