"""A log entry as the stores, the tail and retention see it.

New entries travel as plain tuples (:data:`NewEntry`) from validation to the
store, because ingest handles ~10^5 of them a second and a tuple is the
cheapest object Python builds; :class:`Row` is the read side, with its id.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ROW_OVERHEAD", "NewEntry", "Row", "stored_rows", "stored_size"]

#: Bytes counted per entry beyond its text, for its row and index entries, so
#: that ``BOTMON_LOG_MAX_BYTES`` approximates the space entries take.
ROW_OVERHEAD = 64

#: A validated entry not yet stored: (ts ns, level 0-3, service, message,
#: metadata as compact JSON text or None, size in bytes as counted for retention).
#: Metadata is serialised once, by validation, which needs its exact size anyway.
NewEntry = tuple[int, int, str, str, str | None, int]


@dataclass(slots=True)
class Row:
    """A stored entry: ``ts`` in Unix nanoseconds, ``level`` 0-3, ``metadata`` JSON text or None."""

    id: int
    ts: int
    level: int
    service: str
    message: str
    metadata: str | None

    def metadata_object(self) -> dict[str, Any]:
        return json.loads(self.metadata) if self.metadata else {}


def stored_size(service: str, message: str, metadata: str | None) -> int:
    """The bytes an entry counts towards ``BOTMON_LOG_MAX_BYTES``, as validation counts them
    (which writes the sum inline, per entry of a batch)."""
    return ROW_OVERHEAD + len(service) + len(message.encode()) + len(metadata or "")


def stored_rows(entries: Sequence[NewEntry], ids: Sequence[int]) -> list[Row]:
    """Rows of newly stored entries, given the ids the store assigned."""
    return [Row(i, e[0], e[1], e[2], e[3], e[4])
            for e, i in zip(entries, ids, strict=True)]
