"""The console when the API says no: an expired token (401) and a rate limit (429)."""

from __future__ import annotations

import re
import time

import jwt
import pytest
from selenium.webdriver.common.by import By

from botmon.runtime.config import Settings
from tests.console.chromium import field, link, network_urls, severe_console_entries
from tests.console.conftest import SuiteThread
from tests.console.pages import open_view, sign_in, wait_for, wait_text

SECRET = "console-test-secret-" + "x" * 24


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    """JWTs accepted, and the alerts class limited to 2 requests a minute."""
    settings = Settings.from_env({"BOTMON_JWT_SECRET": SECRET,
                                  "BOTMON_RATE_LIMITS": "alerts=2/minute"},
                                 data_dir=tmp_path_factory.mktemp("console-session"))
    running = SuiteThread(settings, rate_limited=True)
    yield running
    running.close()


@pytest.fixture(autouse=True)
def drained(chrome, suite):
    severe_console_entries(chrome)
    network_urls(chrome, suite.url)


def test_an_expired_token_returns_to_the_token_prompt(suite, chrome):
    # The gateway allows 5 s of clock skew past exp: refused about 7 s from now.
    token = jwt.encode({"sub": "short-lived", "role": "operator", "exp": int(time.time()) + 2},
                       SECRET, algorithm="HS256")
    sign_in(chrome, suite.url, token)
    wait_text(chrome, "short-lived (operator)")
    # The Overview refreshes by itself; the first refused refresh signs out.
    wait_for(chrome, lambda d: field(d, "Token").is_displayed(), "the token prompt", 40)
    wait_text(chrome, "The token was refused (401); sign in again.")
    assert not link(chrome, "Overview").is_displayed()
    assert chrome.execute_script("return sessionStorage.getItem('botmon-token')") is None
    refused = [e["message"] for e in severe_console_entries(chrome)]
    assert refused and all("401" in m for m in refused), refused


def test_a_rate_limit_says_when_to_retry(suite, chrome):
    sign_in(chrome, suite.url, suite.token("operator"))
    open_view(chrome, "Alerts")  # four reads of the alerts class against a limit of two
    notice = wait_for(chrome, lambda d: d.find_element(
        By.XPATH, "//*[@role='status'][contains(., 'Rate limit reached')]"), "the rate-limit notice")
    seconds = re.search(r"Retry in (\d+) s \(at ", notice.text)
    assert seconds and 0 < int(seconds.group(1)) <= 60, notice.text
    refused = [e["message"] for e in severe_console_entries(chrome)]
    assert refused and all("429" in m for m in refused), refused
