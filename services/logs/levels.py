"""Log levels: the four stored severities and how other vocabularies map onto them.

Stored levels are ordered integers so that a minimum-severity filter is a range
(``level >= warn`` is ``level IN (warn, error)``)::

    debug 0 · info 1 · warn 2 · error 3

Accepted on write (case-insensitive, surrounding blanks ignored):

=================================================  ========
names                                              stored
=================================================  ========
``trace``, ``debug``                               debug
``info``, ``information``, ``informational``,
``notice``                                         info
``warn``, ``warning``                              warn
``error``, ``err``, ``fatal``, ``critical``,
``crit``, ``alert``, ``emerg``, ``emergency``,
``panic``                                          error
OpenTelemetry severity texts ``TRACE``..``TRACE4``,
``DEBUG``..``DEBUG4``, ``INFO``..``INFO4``,
``WARN``..``WARN4``, ``ERROR``..``ERROR4``,
``FATAL``..``FATAL4``                              by their base name
=================================================  ========

Numbers: a bare integer 0-7 is a syslog severity (RFC 5424, as journald's
``PRIORITY`` and GELF send it): 0-3 (emerg, alert, crit, err) → error,
4 (warning) → warn, 5-6 (notice, info) → info, 7 (debug) → debug. A bare
integer 8-24 is an OpenTelemetry ``SeverityNumber``: 1-8 → debug (TRACE,
DEBUG), 9-12 → info, 13-16 → warn, 17-24 → error (ERROR, FATAL). Because 1-7
mean different things in the two schemes, a sender can say which it means with
``syslog:N`` or ``otel:N``; a bare 1-7 is read as syslog.
"""

from __future__ import annotations

import re

__all__ = ["DEBUG", "ERROR", "INFO", "LEVELS", "NAMES", "WARN", "at_least", "parse_level"]

DEBUG, INFO, WARN, ERROR = 0, 1, 2, 3

#: Stored level names by their integer.
NAMES = ("debug", "info", "warn", "error")
#: Stored level integers by name.
LEVELS = {name: value for value, name in enumerate(NAMES)}

_ALIASES = {
    "trace": DEBUG, "debug": DEBUG,
    "info": INFO, "information": INFO, "informational": INFO, "notice": INFO,
    "warn": WARN, "warning": WARN,
    "error": ERROR, "err": ERROR, "fatal": ERROR, "critical": ERROR, "crit": ERROR,
    "alert": ERROR, "emerg": ERROR, "emergency": ERROR, "panic": ERROR,
}
_SYSLOG = (ERROR, ERROR, ERROR, ERROR, WARN, INFO, INFO, DEBUG)
_OTEL_TEXT = re.compile(r"(trace|debug|info|warn|error|fatal)([1-4])")

ACCEPTED = ("debug, info, warn, error (also trace, warning, fatal, critical, notice, "
            "syslog 0-7, OpenTelemetry 1-24)")


def _otel(number: int) -> int | None:
    if 1 <= number <= 8:
        return DEBUG
    if 9 <= number <= 12:
        return INFO
    if 13 <= number <= 16:
        return WARN
    if 17 <= number <= 24:
        return ERROR
    return None


def parse_level(raw: str) -> int | None:
    """The stored level for ``raw``, or None when it is not a level."""
    text = raw.strip().lower()
    level = _ALIASES.get(text)
    if level is not None:
        return level
    scheme, sep, number = text.partition(":")
    if sep:
        if not number.isdecimal():
            return None
        if scheme == "syslog":
            return _SYSLOG[int(number)] if int(number) <= 7 else None
        if scheme == "otel":
            return _otel(int(number))
        return None
    if text.isdecimal():
        value = int(text)
        return _SYSLOG[value] if value <= 7 else _otel(value)
    match = _OTEL_TEXT.fullmatch(text)
    if match:
        return _ALIASES[match.group(1)]
    return None


def at_least(minimum: int) -> tuple[int, ...]:
    """The stored levels at or above ``minimum``."""
    return tuple(range(minimum, ERROR + 1))
