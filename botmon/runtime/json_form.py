"""How the API writes two kinds of value in JSON, whoever renders the reply.

The gateway's proto -> JSON mapping (``gateway.convert``) and replies that a
service renders as JSON itself (``services.logs.json_page``) both use these, so
that a value reads the same whichever way its reply was made:

- a time is RFC 3339 in UTC with ``Z``, its fraction in 3, 6 or 9 digits (none
  when whole), as protobuf's JSON mapping writes a Timestamp;
- a number of a free-form JSON object (a ``google.protobuf.Struct``) is a
  double; a whole one below 2^53 is written as an integer, as the API document
  shows them.
"""

from __future__ import annotations

import functools
import time
from typing import Any

__all__ = ["as_struct", "rfc3339", "struct_number", "utc_second"]

#: Doubles at or beyond this magnitude are not all whole numbers' exact values.
_EXACT = 2**53


@functools.lru_cache(maxsize=4096)
def utc_second(seconds: int) -> str:
    """``seconds`` since the Unix epoch as ``YYYY-MM-DDTHH:MM:SS`` in UTC; cached, since the
    values of one reply or batch mostly share their seconds."""
    t = time.gmtime(seconds)
    return (f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
            f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}")


def rfc3339(seconds: int, nanos: int = 0) -> str:
    """``seconds`` since the Unix epoch plus ``nanos`` as RFC 3339 UTC text."""
    when = utc_second(seconds)
    if nanos:
        digits = f"{nanos:09d}"
        digits = digits[:3] if digits[3:] == "000000" else digits[:6] if digits[6:] == "000" \
            else digits
        return f"{when}.{digits}Z"
    return when + "Z"


def struct_number(number: float) -> int | float:
    """A Struct's number as JSON shows it: whole ones below 2^53 as integers."""
    return int(number) if number.is_integer() and abs(number) < _EXACT else number


def as_struct(value: Any) -> Any:
    """A decoded JSON value as a Struct holds it and JSON then shows it: every number a
    double (:func:`struct_number`), objects and arrays likewise all the way down."""
    # Strings, most metadata values, are passed over without a call.
    kind = type(value)
    if kind is dict:
        return {k: v if type(v) is str else as_struct(v) for k, v in value.items()}
    if kind is list:
        return [v if type(v) is str else as_struct(v) for v in value]
    if kind is int or kind is float:
        return struct_number(float(value))
    return value
