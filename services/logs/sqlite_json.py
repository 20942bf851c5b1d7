"""Log entries written as JSON by SQLite itself, in the one step of the statement that reads them.

Python's ``sqlite3`` gives up the GIL for every step of a statement, that is for every
row, and takes it back to build the row's objects. A reader thread fetching a page
row by row therefore waits for the event loop's thread once per row, and the loop's
thread is forced off the GIL as often (every ``sys.getswitchinterval()``), which on a
busy service costs more CPU than the query. Aggregated by SQLite into one text
value, a page is one step: the reader takes the GIL a handful of times a read, and
no Python object is built per entry on either side.

The text is what :mod:`services.logs.json_page` and the export's reader expect:
times as :func:`botmon.runtime.json_form.rfc3339` writes them (3, 6 or 9 digits of
fraction, none when whole), levels by name, strings as JSON strings, and metadata as
the JSON text validation stored (``null`` when there is none).
"""

from __future__ import annotations

from botmon.runtime.jsonfields import parse_timestamp
from services.logs.levels import NAMES

__all__ = ["ENTRY_ARRAY", "ENTRY_OBJECT", "LEVEL", "METADATA", "NUMBERS", "TIME", "position"]

# Digits zero-padded by cutting the leading 1 off 10^n + x: cheaper than printf.
_FRACTION = ("CASE WHEN ts % 1000000000 = 0 THEN '' "
             "WHEN ts % 1000000 = 0 THEN '.' || substr(1000 + ts % 1000000000 / 1000000, 2) "
             "WHEN ts % 1000 = 0 THEN '.' || substr(1000000 + ts % 1000000000 / 1000, 2) "
             "ELSE '.' || substr(1000000000 + ts % 1000000000, 2) END")

#: ``ts`` as RFC 3339 UTC text, quoted (stored times are after 2000, so the division
#: and remainder of a negative number never arise).
TIME = (f"'\"' || strftime('%Y-%m-%dT%H:%M:%S', ts / 1000000000, 'unixepoch') || {_FRACTION}"
        " || 'Z\"'")

#: ``level`` by name, quoted.
LEVEL = "CASE level " + " ".join(f"WHEN {number} THEN '\"{name}\"'"
                                 for number, name in enumerate(NAMES)) + " END"

#: The stored metadata text, ``null`` when there is none (an empty object is never stored).
METADATA = "coalesce(metadata, 'null')"

#: A GLOB pattern matching stored metadata that may hold a number. Numbers are stored as
#: sent (OTLP's integers exactly), not always as a Struct holds them; in compact JSON
#: text every number follows ``:``, ``,`` or ``[`` (a string's text can too, which only
#: costs a needless look). Metadata texts joined by commas match when one of them does.
NUMBERS = "*[:,[][-0-9]*"

#: One entry as the API's ``LogEntry`` object.
ENTRY_OBJECT = (f"""'{{"timestamp":' || {TIME} || ',"level":' || {LEVEL}"""
                """ || ',"service":' || json_quote(service) || ',"message":' || json_quote(message)"""
                f""" || ',"metadata":' || {METADATA} || ',"id":' || id || '}}'""")

#: One entry as ``[id, time_unix_nano, level, service, message, metadata, size]``.
ENTRY_ARRAY = (f"'[' || id || ',' || ts || ',' || {LEVEL} || ',' || json_quote(service)"
               f" || ',' || json_quote(message) || ',' || {METADATA} || ',' || size || ']'")


_TIME_AT = len('{"timestamp":"')


def position(entry: bytes) -> tuple[int, int]:
    """``(ts, id)`` of one :data:`ENTRY_OBJECT`, read back from its text (its time is
    exact: the fraction is written to the nanosecond it needs)."""
    seconds, nanos = parse_timestamp(entry[_TIME_AT:entry.index(b'"', _TIME_AT)].decode(),
                                     "timestamp")
    return seconds * 1_000_000_000 + nanos, int(entry[entry.rindex(b":") + 1:-1])
