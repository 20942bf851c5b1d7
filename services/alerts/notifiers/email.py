"""E-mail over SMTP with an asyncio client; STARTTLS and login as configured."""

from __future__ import annotations

import re
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import aiosmtplib

from services.alerts.notifiers.outcome import Outcome
from services.alerts.notifiers.text import Context, headline, value_text
from services.alerts.rfc3339 import rfc3339

__all__ = ["ADDRESS_FORM", "Smtp", "build", "mailbox", "one_line"]

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"  # RFC 5322 atext
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"  # RFC 1123 host name label
_ADDR_SPEC = re.compile(rf"(?P<local>{_ATOM}(?:\.{_ATOM})*)@(?P<domain>{_LABEL}(?:\.{_LABEL})*)")

#: What :func:`mailbox` accepts, in words for whoever has to fix an address.
ADDRESS_FORM = ("write it as name@example.com: before the @, ASCII letters, digits and "
                "!#$%&'*+-/?=^_`{|}~ in parts separated by single dots (at most 64 characters, "
                "no '=?'); after it, labels of letters, digits and inner hyphens separated by "
                "dots (an internationalised domain in its xn-- form); at most 254 characters")


def one_line(value: str) -> str:
    """``value`` fit for a header: line breaks (CR, LF and the other Unicode ones) become
    spaces, so no text from a rule or a person can add a header or end the headers."""
    return " ".join(str(value).splitlines())


def mailbox(text: str) -> Address:
    """``text`` as the address written in the headers and the SMTP commands, or ValueError.

    Only a plain ASCII addr-spec: the standard library's header parser raises on some other
    forms and decodes an encoded word ('=?') in a local part into another address, aiosmtplib
    refuses control characters, and non-ASCII needs SMTPUTF8, which a relay may lack.
    """
    match = _ADDR_SPEC.fullmatch(text) if len(text) <= 254 else None
    if match is None or len(match["local"]) > 64 or "=?" in match["local"]:
        raise ValueError(f"{text!r}: not an e-mail address botmon can send to; {ADDRESS_FORM}")
    return Address(username=match["local"], domain=match["domain"])


def build(payload: dict[str, Any], sender: str, recipients: list[str], ctx: Context) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = one_line(f"{headline(payload)}: {payload['message']}")[:200]
    message["From"] = mailbox(sender)
    message["To"] = [mailbox(r) for r in recipients]
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain="botmon")
    message["X-Botmon-Alert-Id"] = one_line(payload["alert_id"])
    message["X-Botmon-Status"] = one_line(payload["kind"])
    lines = [
        headline(payload), "", payload["message"], "",
        f"Rule:       {payload['rule']}",
        f"Severity:   {payload['severity']}",
        f"Metric:     {payload['metric']}",
        f"Value:      {value_text(payload)} (threshold {payload['threshold']:g})",
        f"Since:      {rfc3339(payload['triggered_at'])}",
        f"Alert:      {payload['alert_id']}",
    ]
    if payload.get("resolved_at"):
        lines.append(f"Resolved:   {rfc3339(payload['resolved_at'])}")
    if payload.get("acknowledged_at"):
        lines.append(f"Acknowledged by {payload['acknowledged_by']}: {payload.get('notes', '')}")
    lines += ["", f"History: {ctx.history_url(payload['alert_id'])}"]
    message.set_content("\n".join(lines) + "\n")
    return message


class Smtp:
    """The configured SMTP server; each send opens its own connection, bounded by a timeout."""

    def __init__(self, host: str, port: int, *, user: str | None, password: str | None,
                 starttls: bool, sender: str, ca_file: str | None = None,
                 allow_plaintext_auth: bool = False):
        self.host, self.port = host, port
        self.user, self.password = user, password
        self.starttls, self.sender = starttls, sender
        self.ca_file = ca_file
        self.allow_plaintext_auth = allow_plaintext_auth

    async def send(self, message: EmailMessage, recipients: list[str], deadline: float) -> Outcome:
        client = aiosmtplib.SMTP(hostname=self.host, port=self.port, timeout=deadline,
                                 start_tls=self.starttls, cert_bundle=self.ca_file)
        try:
            async with client:
                if self.user:
                    encrypted = client.get_transport_info("sslcontext") is not None
                    if not encrypted and not self.allow_plaintext_auth:
                        return Outcome.failure(
                            "refusing to send the SMTP password over an unencrypted connection; "
                            "set BOTMON_SMTP_STARTTLS=true, or BOTMON_SMTP_ALLOW_PLAINTEXT_AUTH="
                            "true to accept that risk", retryable=False)
                    await client.login(self.user, self.password or "")
                errors, _ = await client.send_message(message, sender=self.sender,
                                                      recipients=recipients)
                # send_message raises unless DATA was answered 250, so 250 is the reply here.
                if errors:
                    refused = ", ".join(f"{r} ({e.code})" for r, e in errors.items())
                    return Outcome(250, True, f"refused: {refused}")
                return Outcome(250, True)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            return Outcome.failure(f"all recipients refused: {exc}", status_code=codes[0],
                                   retryable=all(400 <= c < 500 for c in codes))
        except aiosmtplib.SMTPResponseException as exc:
            return Outcome.failure(f"SMTP {exc.code}: {exc.message}", status_code=exc.code,
                                   retryable=400 <= exc.code < 500)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return Outcome.failure(f"{type(exc).__name__}: {exc}")
