"""What a person does on the console, in a few words: sign in, open a view, wait to see."""

from __future__ import annotations

from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.console.chromium import button, field, link, literal

__all__ = ["WAIT", "fresh_tab", "heading", "open_view", "sign_in", "text_of_page", "wait_for", "wait_text"]

#: Generous bound on anything the page must show; never a timing assertion.
WAIT = 20


def wait_for(driver: WebDriver, predicate, what: str, timeout: float = WAIT):
    """Poll ``predicate(driver)`` until it is truthy; fail naming ``what``."""
    # A view re-renders as its data refreshes: an element found a moment ago may be replaced.
    return WebDriverWait(driver, timeout, poll_frequency=0.2, ignored_exceptions=(
        NoSuchElementException, StaleElementReferenceException)).until(predicate, message=what)


def text_of_page(driver: WebDriver) -> str:
    return driver.find_element(By.TAG_NAME, "body").text


def wait_text(driver: WebDriver, text: str, timeout: float = WAIT) -> None:
    """Wait until ``text`` is visible somewhere on the page."""
    wait_for(driver, lambda d: text in text_of_page(d), f"{text!r} on the page", timeout)


def heading(driver: WebDriver, level: int, text: str):
    return driver.find_element(By.XPATH, f"//h{level}[normalize-space()={literal(text)}]")


def fresh_tab(driver: WebDriver) -> None:
    """Continue in a new tab (sessionStorage is per tab: no earlier token) and close the old."""
    old = driver.current_window_handle
    driver.switch_to.new_window("tab")
    new = driver.current_window_handle
    driver.switch_to.window(old)
    driver.close()
    driver.switch_to.window(new)


def sign_in(driver: WebDriver, url: str, token: str) -> None:
    """Open the console, type the token into ``Token`` and sign in; wait for the Overview."""
    fresh_tab(driver)
    driver.get(f"{url}/ui/")
    token_field = field(driver, "Token")
    token_field.clear()
    token_field.send_keys(token)
    button(driver, "Sign in").click()
    wait_for(driver, lambda d: link(d, "Overview").is_displayed(), "the navigation")
    wait_for(driver, lambda d: heading(d, 1, "Overview"), "the Overview heading")


def open_view(driver: WebDriver, name: str) -> None:
    """Follow the navigation link ``name`` and wait for its heading."""
    link(driver, name).click()
    wait_for(driver, lambda d: heading(d, 1, name).is_displayed(), f"the {name} view")
