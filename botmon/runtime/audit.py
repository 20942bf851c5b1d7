"""Audit entries (CONTRACT.md §11): the ``botmon.audit`` log entry each change becomes.

Changes kept in a store carry their record in the same transaction (the alerts
service's outbox). A secret bootstrapped into the data dir has no transaction,
so its record goes to the data dir's own outbox, ``audit-outbox/``, before the
secret file is made: a secret never exists without its record. The logs
service, which shares the data dir, stores and deletes the records there
(:class:`DataDirOutbox`).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from google.protobuf import timestamp_pb2

from botmon.logs.v1 import log_entry_pb2
from botmon.runtime.datadir import private_dir

__all__ = ["AUDIT_SERVICE", "OUTBOX_DIR", "DataDirOutbox", "audit_entry"]

#: The log service name of audit entries: GET /logs?service=botmon.audit reads them.
AUDIT_SERVICE = "botmon.audit"
#: The data dir's folder of records not yet stored by the logs service.
OUTBOX_DIR = "audit-outbox"


def audit_entry(*, audit_id: str, time: float, subject: str, role: str, request_id: str,
                action: str, resource: str, changes: Mapping[str, Any]
                ) -> log_entry_pb2.LogEntry:
    """The log entry of one audited change."""
    entry = log_entry_pb2.LogEntry(
        level="info", service=AUDIT_SERVICE, message=f"{subject} {action} {resource}",
        timestamp=timestamp_pb2.Timestamp(seconds=int(time), nanos=int(time % 1 * 1e9)))
    entry.metadata.update({
        "subject": subject, "role": role, "request_id": request_id, "action": action,
        "resource": resource, "audit_id": audit_id, "changes": dict(changes)})
    return entry


class DataDirOutbox:
    """Audit records of changes made to the data dir itself, one JSON file each."""

    def __init__(self, data_dir: Path):
        self.path = Path(data_dir) / OUTBOX_DIR

    def add(self, *, subject: str, role: str, action: str, resource: str,
            changes: Mapping[str, Any]) -> Path:
        """Write one record durably (mode 0600); returns its file."""
        private_dir(self.path)
        record = {"audit_id": f"datadir-{uuid.uuid4().hex}", "time": time.time(),
                  "subject": subject, "role": role, "request_id": uuid.uuid4().hex,
                  "action": action, "resource": resource, "changes": dict(changes)}
        final = self.path / f"{record['audit_id']}.json"
        partial = final.with_suffix(".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh)
            fh.flush()
            os.fsync(fh.fileno())
        # Renamed only once complete: the logs service never reads half a record.
        os.replace(partial, final)
        return final

    def pending(self) -> list[tuple[Path, log_entry_pb2.LogEntry]]:
        """The records waiting, oldest first, with their entries."""
        if not self.path.is_dir():
            return []
        found = []
        for path in self.path.glob("*.json"):
            record = json.loads(path.read_text())
            found.append((record["time"], path, audit_entry(**record)))
        return [(path, entry) for _, path, entry in sorted(found, key=lambda f: f[0])]
