"""Silences: label matchers (equality, regex, negative) that mute alerts for a while.

Regular expressions run on RE2 (``google-re2``), whose matching time is linear
in the input, so no pattern can make ``GET /alerts`` or the evaluator backtrack
for seconds (``(a+)+b`` is as cheap as ``ab``). Patterns RE2 cannot compile
(backreferences, lookarounds, or a program over its memory cap) are refused.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import re2

from botmon.runtime.errors import InvalidArgument

__all__ = ["Matcher", "Silence", "check_matchers"]

MAX_MATCHERS = 32
MAX_NAME = 128
MAX_VALUE = 1024
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a refused pattern is the client's 400, not a line on stderr
_OPTIONS.max_mem = 1 << 20  # bytes of compiled program per pattern


@functools.lru_cache(maxsize=1024)
def _pattern(value: str) -> re2._Regexp:
    return re2.compile(value, options=_OPTIONS)


@dataclass(frozen=True)
class Matcher:
    """One comparison of an alert label (``alertname`` is the rule, ``severity`` its severity)."""

    name: str
    value: str
    is_regex: bool = False
    is_negative: bool = False

    def matches(self, labels: dict[str, str]) -> bool:
        # A missing label compares as "", as in Alertmanager.
        actual = labels.get(self.name, "")
        if not self.is_regex:
            hit = actual == self.value
        else:
            try:
                hit = bool(_pattern(self.value).fullmatch(actual))
            except re2.error:
                hit = False  # stored before RE2 judged patterns; such a matcher matches nothing
        return hit != self.is_negative

    def to_dict(self) -> dict:
        return {"name": self.name, "value": self.value, "is_regex": self.is_regex,
                "is_negative": self.is_negative}


@dataclass(frozen=True)
class Silence:
    """Mutes the alerts every matcher matches, from ``starts_at`` until ``ends_at``."""

    silence_id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    created_by: str = ""
    comment: str = ""

    def state(self, now: float) -> str:
        if now >= self.ends_at:
            return "expired"
        return "pending" if now < self.starts_at else "active"

    def mutes(self, labels: dict[str, str], now: float) -> bool:
        return self.starts_at <= now < self.ends_at and all(m.matches(labels) for m in self.matchers)


def check_matchers(matchers: list[Matcher]) -> None:
    """Raise InvalidArgument with what to fix unless the matchers are usable."""
    if not matchers:
        raise InvalidArgument("a silence needs at least one matcher, e.g. "
                              "{\"name\": \"alertname\", \"value\": \"high_cpu\"}")
    if len(matchers) > MAX_MATCHERS:
        raise InvalidArgument(f"a silence has at most {MAX_MATCHERS} matchers, got {len(matchers)}")
    for i, m in enumerate(matchers):
        if not m.name:
            raise InvalidArgument(f"matchers[{i}].name is required: 'alertname', 'severity' "
                                  "or a label name")
        if len(m.name) > MAX_NAME:
            raise InvalidArgument(f"matchers[{i}].name must be at most {MAX_NAME} characters")
        if len(m.value) > MAX_VALUE:
            raise InvalidArgument(f"matchers[{i}].value must be at most {MAX_VALUE} characters")
        if m.is_regex:
            try:
                _pattern(m.value)
            except re2.error as exc:
                reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(
                    exc.args[0], bytes) else str(exc)
                raise InvalidArgument(f"matchers[{i}].value is not a valid regular expression "
                                      f"for RE2 ({reason}); backreferences and lookarounds are "
                                      "not supported") from None
    if all(m.is_negative or (_pattern(m.value).fullmatch("") if m.is_regex else m.value == "")
           for m in matchers):
        # Such a silence would also match every alert without the label: almost surely a mistake.
        raise InvalidArgument("at least one matcher must be positive and not match the empty "
                              "string, or the silence would mute every alert")
