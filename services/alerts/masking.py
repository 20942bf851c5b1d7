"""How credential targets are shown: enough to recognise one, never enough to use it.

Slack and Teams incoming-webhook URLs carry their secret in the path, and a
PagerDuty routing key is a secret as a whole, so the API and history show
``https://hooks.slack.com/…/abcd`` and ``…abcd``. A rule sent back with its
masked value unchanged keeps the stored one (what a client that read the rule
and edits another field sends).
"""

from __future__ import annotations

import dataclasses
from urllib.parse import urlsplit

from services.alerts.rule import Rule

__all__ = ["MASKED_CHANNELS", "mask", "restore_masked"]

MASKED_CHANNELS = ("slack", "teams", "pagerduty")
_ELLIPSIS = "…"


def mask(channel: str, value: str) -> str:
    """``value`` of ``channel`` as shown: the last four characters and, for URLs, the host."""
    if not value:
        return ""
    tail = value.rstrip("/")[-4:]
    if channel == "pagerduty":
        return _ELLIPSIS + tail
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return _ELLIPSIS + tail
    return f"{parts.scheme}://{host}{port}/{_ELLIPSIS}/{tail}"


def restore_masked(rule: Rule, stored: Rule | None) -> Rule:
    """``rule`` with each target that equals the mask of ``stored``'s replaced by the stored
    value, so a rule read from the API and sent back keeps its credentials."""
    if stored is None:
        return rule
    kept = {channel: getattr(stored.notify, channel) for channel in MASKED_CHANNELS
            if getattr(rule.notify, channel)
            and getattr(rule.notify, channel) == mask(channel, getattr(stored.notify, channel))}
    if not kept:
        return rule
    return dataclasses.replace(rule, notify=dataclasses.replace(rule.notify, **kept))
