"""The six notification channels behind one ``send``: each attempt bounded, never raising."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from services.alerts.destinations import DestinationPolicy, PolicyResolver
from services.alerts.notifiers import email, pagerduty, slack, sms, teams, webhook
from services.alerts.notifiers.http import post_json
from services.alerts.notifiers.outcome import Outcome
from services.alerts.notifiers.text import Context

__all__ = ["CHANNELS", "Notifiers", "Outcome", "describe_target"]

CHANNELS = ("email", "webhook", "slack", "teams", "pagerduty", "sms")


def describe_target(channel: str, target: Any) -> str:
    """The target as history shows it: no credentials, no secret webhook tokens."""
    if channel == "email":
        return ", ".join(target)
    if channel == "pagerduty":
        return "routing key …" + str(target)[-4:]
    if channel in ("webhook", "slack", "teams"):
        parts = urlsplit(str(target))
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        # Slack and Teams URLs are bearer secrets in their path, so only the host is shown.
        path = parts.path if channel == "webhook" else "/…"
        return f"{parts.scheme}://{host}{path}"
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
        """One attempt; the timeout is enforced here as well, so a hung receiver costs no more."""
        try:
            return await asyncio.wait_for(self._send(channel, target, secret, payload),
                                          self.timeout + 1)
        except TimeoutError:
            return Outcome.failure(f"no answer within {self.timeout:g}s")

    async def _send(self, channel: str, target: Any, secret: str,
                    payload: dict[str, Any]) -> Outcome:
        ctx, timeout = self.context, self.timeout
        # Rule-controlled URLs are judged again now: a literal address never reaches the
        # resolver, and the policy may have changed since the rule was stored.
        if channel in ("webhook", "slack", "teams") \
                and (problem := self.destinations.problem(target)):
            return Outcome.failure(problem, retryable=False)
        if channel == "email":
            if self.smtp is None:
                return Outcome.failure("BOTMON_SMTP_HOST is not set", retryable=False)
            message = email.build(payload, self.smtp.sender, list(target), ctx)
            return await self.smtp.send(message, list(target), timeout)
        if channel == "webhook":
            raw = webhook.encode(webhook.build(payload, ctx))
            headers = {webhook.SIGNATURE_HEADER: webhook.signature(secret, raw)} if secret else {}
            return await post_json(self.session(), target, raw, timeout, headers)
        if channel == "slack":
            return await post_json(self.session(), target,
                                   webhook.encode(slack.build(payload, ctx)), timeout)
        if channel == "teams":
            return await post_json(self.session(), target,
                                   webhook.encode(teams.build(payload, ctx)), timeout)
        if channel == "pagerduty":
            body = pagerduty.build(payload, target, ctx)
            return await post_json(self.session(), self.pagerduty_url, webhook.encode(body),
                                   timeout)
        if channel == "sms":
            if not self.sms_gateway_url:
                return Outcome.failure("BOTMON_SMS_GATEWAY_URL is not set", retryable=False)
            return await post_json(self.session(), self.sms_gateway_url,
                                   webhook.encode(sms.build(payload, target)), timeout)
        return Outcome.failure(f"unknown channel {channel!r}", retryable=False)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
