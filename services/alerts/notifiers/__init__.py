"""The six notification channels behind one ``send``: each attempt bounded, never raising."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from services.alerts.destinations import DestinationPolicy, PolicyResolver
from services.alerts.masking import MASKED_CHANNELS, mask
from services.alerts.notifiers import email, pagerduty, slack, sms, teams, webhook
from services.alerts.notifiers.http import post_json
from services.alerts.notifiers.outcome import Outcome
from services.alerts.notifiers.text import Context

__all__ = ["CHANNELS", "Notifiers", "Outcome", "describe_target"]

log = logging.getLogger("botmon.alerts.notifiers")

CHANNELS = ("email", "webhook", "slack", "teams", "pagerduty", "sms")


def describe_target(channel: str, target: Any) -> str:
    """The target as history shows it: no credentials, no secret webhook tokens."""
    if channel == "email":
        return ", ".join(target)
    if channel == "pagerduty":
        return "routing key " + mask(channel, str(target))
    if channel in MASKED_CHANNELS:
        return mask(channel, str(target))
    if channel == "webhook":
        parts = urlsplit(str(target))
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        return f"{parts.scheme}://{host}{parts.path}"
    return str(target)


class Notifiers:
    """Sends one notification to one channel target; open on the loop that uses it."""

    def __init__(self, *, context: Context, timeout: float, smtp: email.Smtp | None,
                 pagerduty_url: str, sms_gateway_url: str | None,
                 destinations: DestinationPolicy):
        self.context = context
        self.timeout = timeout
        self.smtp = smtp
        self.pagerduty_url = pagerduty_url
        self.sms_gateway_url = sms_gateway_url
        self.destinations = destinations
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": "botmon-alerts/1"},
                connector=aiohttp.TCPConnector(limit=0, limit_per_host=20,
                                               resolver=PolicyResolver(self.destinations)))
        return self._session

    async def send(self, channel: str, target: Any, secret: str,
                   payload: dict[str, Any]) -> Outcome:
        """One attempt; the timeout is enforced here as well, so a hung receiver costs no more.

        Never raises: whatever goes wrong is an Outcome, so every failure of every channel
        is recorded and retried with the dispatcher's backoff.
        """
        try:
            return await asyncio.wait_for(self._send(channel, target, secret, payload),
                                          self.timeout + 1)
        except TimeoutError:
            return Outcome.failure(f"no answer within {self.timeout:g}s")
        except Exception as exc:
            log.exception("sending a %s notification failed unexpectedly", channel)
            return Outcome.failure(f"unexpected error ({type(exc).__name__})")

    def url(self, channel: str, target: Any) -> str | None:
        """The URL ``channel`` posts to for ``target``; None for e-mail or an unset gateway."""
        if channel in ("webhook", "slack", "teams"):
            return str(target)
        if channel == "pagerduty":
            return self.pagerduty_url
        if channel == "sms":
            return self.sms_gateway_url
        return None

    async def _send(self, channel: str, target: Any, secret: str,
                    payload: dict[str, Any]) -> Outcome:
        if channel not in CHANNELS:
            return Outcome.failure(f"unknown channel {channel!r}", retryable=False)
        # Every URL is judged now, as the HTTP client will see it: a literal address never
        # reaches the resolver, and the policy may have changed since the rule was stored.
        url = self.url(channel, target)
        if url is not None and (problem := self.destinations.problem(url)):
            return Outcome.failure(problem, retryable=False)
        if channel == "email" and self.smtp is None:
            return Outcome.failure("BOTMON_SMTP_HOST is not set", retryable=False)
        if channel == "sms" and url is None:
            return Outcome.failure("BOTMON_SMS_GATEWAY_URL is not set", retryable=False)
        try:
            body = self._body(channel, target, payload)
        except Exception as exc:
            # The notification cannot be built (a value its format refuses, say): building
            # does no I/O, so no retry would build it either. Any type: the standard library's
            # address parser raises AttributeError or IndexError on some addresses.
            return Outcome.failure(f"cannot build the {channel} notification: "
                                   f"{type(exc).__name__}: {exc}", retryable=False)
        if channel == "email":
            return await self.smtp.send(body, list(target), self.timeout)
        raw = webhook.encode(body)
        headers = ({webhook.SIGNATURE_HEADER: webhook.signature(secret, raw)}
                   if channel == "webhook" and secret else {})
        return await post_json(self.session(), url, raw, self.timeout, headers)

    def _body(self, channel: str, target: Any, payload: dict[str, Any]) -> Any:
        """The message of ``channel``: an EmailMessage, or the JSON body to POST."""
        ctx = self.context
        if channel == "email":
            return email.build(payload, self.smtp.sender, list(target), ctx)
        if channel == "webhook":
            return webhook.build(payload, ctx)
        if channel == "slack":
            return slack.build(payload, ctx)
        if channel == "teams":
            return teams.build(payload, ctx)
        if channel == "pagerduty":
            return pagerduty.build(payload, target, ctx)
        return sms.build(payload, target)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
