"""Debian's Chromium under Selenium, and finding things on a page the way a person does.

Nothing here downloads a browser: chromedriver's path is given to ``Service``, so
Selenium Manager never runs. Elements are found by role, accessible name and
visible text (XPath over labels, aria-label and button text), never by CSS class.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from contextlib import contextmanager

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

__all__ = ["CHROMEDRIVER", "CHROMIUM", "button", "browser", "field", "link", "literal",
           "network_urls", "severe_console_entries"]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage")


@contextmanager
def browser(width: int = 1280, height: int = 800):
    """A headless Chromium with a fresh profile, browser and performance logs on."""
    profile = tempfile.mkdtemp(prefix="botmon-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def literal(text: str) -> str:
    """``text`` as an XPath string literal."""
    if "'" not in text:
        return f"'{text}'"
    return "concat('" + "', \"'\", '".join(text.split("'")) + "')"


def field(scope: WebDriver | WebElement, name: str) -> WebElement:
    """The form control labelled ``name`` (``<label for>``, wrapping label or aria-label)."""
    n = literal(name)
    return scope.find_element(By.XPATH, (
        f".//*[self::input or self::select or self::textarea][@id=//label[normalize-space()={n}]/@for"
        f" or @aria-label={n} or ancestor::label[normalize-space()={n}]]"))


def description(scope: WebDriver | WebElement, name: str) -> str:
    """The accessible description of the control labelled ``name``: the visible text of the
    elements its ``aria-describedby`` names (its hint, and its error when one is shown)."""
    control = field(scope, name)
    ids = (control.get_attribute("aria-describedby") or "").split()
    parts = [scope.find_element(By.XPATH, f"//*[@id={literal(i)}]") for i in ids]
    return " ".join(p.text for p in parts if p.is_displayed())


def button(scope: WebDriver | WebElement, name: str) -> WebElement:
    """The button whose accessible name (aria-label, else its text) is ``name``."""
    n = literal(name)
    return scope.find_element(By.XPATH, (
        f".//button[@aria-label={n} or (not(@aria-label) and normalize-space()={n})]"))


def link(scope: WebDriver | WebElement, name: str) -> WebElement:
    """The link whose text is ``name``."""
    return scope.find_element(By.XPATH, f".//a[normalize-space()={literal(name)}]")


def severe_console_entries(driver: WebDriver) -> list[dict]:
    """The browser console's SEVERE entries since the last call (errors, CSP violations)."""
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def network_urls(driver: WebDriver, page_prefix: str) -> list[str]:
    """Every URL that documents under ``page_prefix`` requested since the last call (HTTP and
    WebSocket), from CDP Network events; the browser's own pages (its new-tab page) are left out."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        method = message.get("method")
        params = message.get("params", {})
        if method == "Network.requestWillBeSent" and \
                params.get("documentURL", "").startswith(page_prefix):
            urls.append(params["request"]["url"])
        elif method == "Network.webSocketCreated":
            urls.append(params["url"])
    return urls
