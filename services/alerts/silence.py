"""Silences: label matchers (equality, regex, negative) that mute alerts for a while."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from botmon.runtime.errors import InvalidArgument

__all__ = ["Matcher", "Silence", "check_matchers"]

MAX_MATCHERS = 32


@functools.lru_cache(maxsize=1024)
def _pattern(value: str) -> re.Pattern[str]:
    return re.compile(value)


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
        hit = bool(_pattern(self.value).fullmatch(actual)) if self.is_regex else actual == self.value
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
        if len(m.value) > 1024:
            raise InvalidArgument(f"matchers[{i}].value must be at most 1024 characters")
        if m.is_regex:
            try:
                _pattern(m.value)
            except re.error as exc:
                raise InvalidArgument(f"matchers[{i}].value is not a valid regular expression: "
                                      f"{exc}") from None
    if all(m.is_negative or _pattern(m.value if m.is_regex else re.escape(m.value)).fullmatch("")
           for m in matchers):
        # Such a silence would also match every alert without the label: almost surely a mistake.
        raise InvalidArgument("at least one matcher must be positive and not match the empty "
                              "string, or the silence would mute every alert")
