"""The SMTP password is not sent over an unencrypted connection unless the operator says so
(``BOTMON_SMTP_ALLOW_PLAINTEXT_AUTH=true``); a real local SMTP server (aiosmtpd) that accepts
AUTH without TLS records whether it was ever given."""

from __future__ import annotations

import pytest

from tests.alerts.stand_ins import Mailbox

RULE = {"name": "mail_probe", "metric": "memory.usage_percent", "condition": "greater_than",
        "threshold": 99, "duration_seconds": 60, "notify": {"email": ["oncall@example.com"]}}


@pytest.fixture
def mailbox():
    box = Mailbox(login=("botmon", "smtp-secret"))
    box.start()
    yield box
    box.stop()


async def _test_delivery(suite, http) -> dict:
    r = await http.post(f"{suite.base}/alerts/configure", json=RULE,
                        headers=suite.headers("operator"))
    assert r.status_code == 201, r.text
    r = await http.post(f"{suite.base}/alerts/rules/mail_probe/test",
                        headers=suite.headers("operator"))
    assert r.status_code == 200, r.text
    [delivery] = r.json()["deliveries"]
    return delivery


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_no_login_over_plain_text_by_default(alerts_suite, http, mailbox):
    async with alerts_suite(smtp_host="127.0.0.1", smtp_port=mailbox.port, smtp_user="botmon",
                            smtp_password="smtp-secret") as suite:
        delivery = await _test_delivery(suite, http)
    assert not delivery["success"]
    assert "BOTMON_SMTP_ALLOW_PLAINTEXT_AUTH" in delivery["error"], delivery
    assert mailbox.logins == [] and mailbox.messages == []


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_plain_text_login_when_allowed(alerts_suite, http, mailbox):
    async with alerts_suite(smtp_host="127.0.0.1", smtp_port=mailbox.port, smtp_user="botmon",
                            smtp_password="smtp-secret", smtp_allow_plaintext_auth=True) as suite:
        delivery = await _test_delivery(suite, http)
    assert delivery["success"], delivery
    assert mailbox.logins == ["botmon"] and len(mailbox.messages) == 1
