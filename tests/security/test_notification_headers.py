"""A line break in a rule's text cannot add mail headers nor send the dispatcher into a loop.

The subject of an e-mail carries the rule's message; ``EmailMessage`` refuses a
header value with CR or LF. The line breaks are folded into spaces, so the mail
goes out (to a real local SMTP server), once, with a one-line subject, and
``POST /alerts/rules/<name>/test`` answers 200 instead of 500.
"""

from __future__ import annotations

import asyncio

from tests.waiting import eventually

DESCRIPTION = "memory at {value}\r\nBcc: attacker@example.com\nX-Injected: yes"
RULE = {"name": "multiline", "metric": "memory.usage_percent", "condition": "greater_than",
        "threshold": 50, "duration_seconds": 0, "description": DESCRIPTION,
        "notify": {"email": ["oncall@example.com"]}}


async def test_test_notification_with_line_breaks_is_sent_as_one_header_line(
        alerts_suite, http, mailbox):
    async with alerts_suite(smtp_host="127.0.0.1", smtp_port=mailbox.port) as suite:
        r = await http.post(f"{suite.base}/alerts/configure", json=RULE,
                            headers=suite.headers("operator"))
        assert r.status_code == 201, r.text
        r = await http.post(f"{suite.base}/alerts/rules/multiline/test",
                            headers=suite.headers("operator"))
        assert r.status_code == 200, r.text
        [delivery] = r.json()["deliveries"]
        assert delivery["success"], delivery
    [(recipients, message)] = mailbox.messages
    assert recipients == ["oncall@example.com"]
    # Long headers are folded on the wire (RFC 5322); unfolded, the subject is one line.
    subject = " ".join(message["Subject"].split())
    assert "memory at no data Bcc: attacker@example.com X-Injected: yes" in subject
    assert message["X-Injected"] is None and message["Bcc"] is None


async def test_a_firing_alert_with_line_breaks_is_mailed_once(alerts_suite, http, mailbox):
    async with alerts_suite(smtp_host="127.0.0.1", smtp_port=mailbox.port) as suite:
        r = await http.post(f"{suite.base}/alerts/configure", json=RULE,
                            headers=suite.headers("operator"))
        assert r.status_code == 201, r.text
        suite.metrics.values["memory.usage_percent"] = 80.0

        async def deliveries():
            r = await http.get(f"{suite.base}/alerts/history", params={"rule": "multiline"},
                               headers=suite.headers())
            return [h["delivery"] for h in r.json()["history"] if h["kind"] == "delivery"]
        [delivery] = await eventually(deliveries)
        assert delivery["success"] and delivery["attempt"] == 1, delivery
        # Several evaluation cycles (0.2 s each) later, still one attempt and one mail.
        await asyncio.sleep(1.5)
        assert len(await deliveries()) == 1
    assert len(mailbox.messages) == 1
