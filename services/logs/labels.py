"""Loki stream label strings, parsed strictly: ``{job="checkout", env="prod"}``.

The syntax is that of a PromQL selector with equality matchers only, as Loki
itself reads it: names are ``[a-zA-Z_][a-zA-Z0-9_]*``; values are string
literals in double quotes, single quotes or backticks, with Go's escapes in the
quoted forms (``\\a \\b \\f \\n \\r \\t \\v \\\\``, the quote itself, ``\\xHH``,
three octal digits, ``\\uHHHH``, ``\\UHHHHHHHH``) and none in backticks; blanks
around tokens and a trailing comma are allowed. At least one label is required
and none may repeat, as Loki requires.
"""

from __future__ import annotations

import re

__all__ = ["LabelError", "parse_labels"]

_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_BLANK = re.compile(r"[ \t\r\n]*")
_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
           "\\": "\\"}
_HEX = {"x": 2, "u": 4, "U": 8}
_OCTAL = "01234567"


class LabelError(ValueError):
    """A label string that does not parse; the message says where and why."""


def _fail(text: str, at: int, what: str) -> LabelError:
    return LabelError(f"{what} at character {at + 1} of {text[:200]!r}")


def _skip(text: str, at: int) -> int:
    return _BLANK.match(text, at).end()


def _value(text: str, at: int) -> tuple[str, int]:
    """The string literal starting at ``at`` and the position after it."""
    quote = text[at] if at < len(text) else ""
    if quote not in ('"', "'", "`"):
        raise _fail(text, at, "expected a quoted value")
    out = bytearray()  # \x and octal escapes are bytes, as in Go: UTF-8 once joined
    i = at + 1
    while True:
        if i >= len(text):
            raise _fail(text, at, "unterminated string")
        char = text[i]
        if char == quote:
            try:
                return out.decode(), i + 1
            except UnicodeDecodeError:
                raise _fail(text, at, "escaped bytes that are not UTF-8") from None
        if char == "\n" and quote != "`":
            raise _fail(text, i, "newline in a quoted value (write \\n)")
        if char != "\\" or quote == "`":
            out += char.encode()
            i += 1
            continue
        escape = text[i + 1] if i + 1 < len(text) else ""
        if not escape:
            raise _fail(text, at, "unterminated string")
        if escape in _SIMPLE or escape == quote:
            out += _SIMPLE.get(escape, quote).encode()
            i += 2
        elif escape in _HEX:
            digits = text[i + 2:i + 2 + _HEX[escape]]
            if len(digits) != _HEX[escape] or not all(c in "0123456789abcdefABCDEF"
                                                       for c in digits):
                raise _fail(text, i, f"\\{escape} needs {_HEX[escape]} hex digits")
            code = int(digits, 16)
            if escape == "x":
                out.append(code)
            elif 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
                raise _fail(text, i, f"\\{escape}{digits} is not a Unicode character")
            else:
                out += chr(code).encode()
            i += 2 + _HEX[escape]
        elif escape in _OCTAL:
            digits = text[i + 1:i + 4]
            if len(digits) != 3 or not all(c in _OCTAL for c in digits) or int(digits, 8) > 255:
                raise _fail(text, i, "an octal escape is three digits up to \\377")
            out.append(int(digits, 8))
            i += 4
        else:
            raise _fail(text, i, f"unknown escape \\{escape}")


def parse_labels(text: str) -> dict[str, str]:
    """The labels of ``text``; raises :class:`LabelError` saying what is wrong."""
    at = _skip(text, 0)
    if not text.startswith("{", at):
        raise _fail(text, at, "expected '{'")
    labels: dict[str, str] = {}
    at = _skip(text, at + 1)
    while not text.startswith("}", at):
        name = _NAME.match(text, at)
        if name is None:
            raise _fail(text, at, "expected a label name ([a-zA-Z_][a-zA-Z0-9_]*)")
        at = _skip(text, name.end())
        if not text.startswith("=", at) or text.startswith("=~", at):
            raise _fail(text, at, f"expected '=' after {name.group()!r}")
        value, at = _value(text, _skip(text, at + 1))
        if name.group() in labels:
            raise _fail(text, name.start(), f"label {name.group()!r} is repeated")
        labels[name.group()] = value
        at = _skip(text, at)
        if text.startswith(",", at):
            at = _skip(text, at + 1)
        elif not text.startswith("}", at):
            raise _fail(text, at, "expected ',' or '}'")
    if _skip(text, at + 1) != len(text):
        raise _fail(text, at + 1, "unexpected text after '}'")
    if not labels:
        raise LabelError("a stream needs at least one label, e.g. {job=\"checkout\"}")
    return labels
