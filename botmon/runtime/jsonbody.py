"""A JSON request body decoded once, with orjson, under the limits every JSON route shares.

The gateway decodes the bodies it transcodes with it, and the services decode the
ingest bodies it passes through as ``google.api.HttpBody``: one statement of what a
body may be. An empty body is ``{}``; anything else that is not JSON, not UTF-8, holds
a lone UTF-16 surrogate, a number beyond a 64-bit float or ``NaN``, or nests objects
and arrays more than :data:`MAX_JSON_DEPTH` levels deep is an ``InvalidArgument``
that says what to fix.
"""

from __future__ import annotations

from typing import Any

import orjson

from botmon.runtime.errors import InvalidArgument

__all__ = ["MAX_JSON_DEPTH", "check_nesting", "decode_json"]

#: Deepest nesting of objects and arrays accepted in a JSON body. Each level can cost
#: three protobuf levels (Struct, map entry, Value), and protobuf decoders stop at 100.
MAX_JSON_DEPTH = 32

_CONSTANTS = (b"NaN", b"Infinity", b"-Infinity")


def decode_json(body: bytes | None, *, nesting: bool = True) -> Any:
    """The decoded body; raises :class:`InvalidArgument` naming what is wrong and where.

    ``nesting=False`` leaves the nesting limit to a caller that refuses objects and
    arrays wherever its message has no room for them and calls :func:`check_nesting`
    where it has: walking a large body costs as much as decoding it.
    """
    if not body or not body.strip():
        return {}
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _problem(body, exc) from None
    # Only a body with more brackets than the limit can nest deeper than it.
    if nesting and body.count(b"{") + body.count(b"[") > MAX_JSON_DEPTH:
        check_nesting(value, 0)
    return value


def check_nesting(value: Any, level: int) -> None:
    """Refuse the body if ``value``, found ``level`` levels deep in it, nests past the limit."""
    if _nesting(value) + level > MAX_JSON_DEPTH:
        raise _too_deep()


def _problem(body: bytes, exc: orjson.JSONDecodeError) -> InvalidArgument:
    reason = exc.msg
    if "UTF-8" in reason:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as bad:
            return InvalidArgument(f"request body is not UTF-8 (byte {bad.start}); send UTF-8 "
                                   "JSON")
    if "surrogate" in reason:
        return InvalidArgument("the request body has a lone UTF-16 surrogate escape (\\ud800 to "
                               "\\udfff without its pair); such text is not Unicode")
    if "depth limit" in reason or "recursion" in reason:
        return _too_deep()
    where = f"at line {exc.lineno} column {exc.colno}"
    if "infinity" in reason:
        return InvalidArgument(f"a number in the request body {where} is out of range for a "
                               "64-bit float; send a smaller one")
    start = exc.pos - 1 if body[exc.pos - 1:exc.pos] == b"-" else exc.pos
    constant = next((c for c in _CONSTANTS if body.startswith(c, start)), None)
    if constant is not None:
        return InvalidArgument(f"{constant.decode()} is not valid JSON; send a number or a "
                               "string")
    return InvalidArgument(f"malformed JSON in the request body {where}: {reason}")


def _too_deep() -> InvalidArgument:
    return InvalidArgument(f"the request body nests objects and arrays more than "
                           f"{MAX_JSON_DEPTH} levels deep; flatten it")


def _nesting(value: Any) -> int:
    """How deep objects and arrays nest in ``value``, counted up to one past the limit."""
    level = [value] if isinstance(value, dict | list) else []
    depth = 0
    while level and depth <= MAX_JSON_DEPTH:
        depth += 1
        inner = []
        for item in level:
            children = item.values() if type(item) is dict else item
            inner.extend(c for c in children if type(c) is dict or type(c) is list)
        level = inner
    return depth
