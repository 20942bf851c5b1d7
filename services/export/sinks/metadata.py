"""Log metadata as vendors take it: JSON values, and text for string-only fields.

Metadata travels as a protobuf Struct, whose numbers are all doubles; a whole
number goes out as the integer the client sent (``3``, not ``3.0``).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["jsonable", "text"]


def jsonable(value: Any) -> Any:
    """``value`` with whole-number floats as ints, through dicts and lists."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def text(value: Any) -> str:
    """A string as it is; anything else as compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):  # before int: a bool is an int
        return "true" if value else "false"
    if isinstance(value, int) or isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(jsonable(value), ensure_ascii=False, separators=(",", ":"), sort_keys=True)
