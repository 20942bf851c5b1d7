"""The console in a real Chromium against a running suite (CONTRACT.md §12).

Every test here ends with two checks made by ``clean_session``: the browser console
logged no error (CSP violations and failed requests are errors there), and every
request the page made, HTTP or WebSocket, went to the gateway's own origin.
"""

from __future__ import annotations

import base64
import os
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from selenium.common.exceptions import NoSuchElementException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from botmon.runtime.config import Settings
from tests.console.chromium import (
    button,
    description,
    field,
    link,
    literal,
    network_urls,
    severe_console_entries,
)
from tests.console.conftest import SuiteThread
from tests.console.pages import (
    fresh_tab,
    heading,
    open_view,
    sign_in,
    text_of_page,
    wait_for,
    wait_text,
)
from tests.waiting import wait_until

WRITE_ACTIONS = ("Acknowledge", "New rule", "Edit", "Delete", "New silence", "Expire")


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    """The whole suite, evaluating alert rules every second."""
    running = SuiteThread(Settings.from_env({"BOTMON_ALERT_EVAL_INTERVAL": "1"},
                                            data_dir=tmp_path_factory.mktemp("console")))
    yield running
    running.close()


@pytest.fixture(autouse=True)
def clean_session(request, suite, chrome):
    """Drain the browser's logs before the test; after it, no console error and no other origin."""
    severe_console_entries(chrome)
    network_urls(chrome, suite.url)
    yield
    allowed = request.node.get_closest_marker("console_allows")
    errors = [e for e in severe_console_entries(chrome)
              if not (allowed and allowed.args[0] in e["message"])]
    assert errors == [], f"browser console errors: {errors}"
    origin = urlsplit(suite.url)
    for url in network_urls(chrome, suite.url):
        parts = urlsplit(url)
        if parts.scheme == "data":  # inline images of the browser's own widgets: no request
            continue
        assert (parts.hostname, parts.port) == (origin.hostname, origin.port) and \
            parts.scheme in ("http", "ws"), f"the page requested {url}, off the gateway's origin"


def post_logs(suite: SuiteThread, *entries: dict) -> None:
    r = suite.http.post("/logs", json={"logs": list(entries)}, headers=suite.headers("operator"))
    assert r.status_code == 202, r.text


def holding_rule(suite: SuiteThread, rule: str) -> None:
    """Configure a rule whose condition holds at once (cpu.cores > 0)."""
    r = suite.http.post("/alerts/configure", headers=suite.headers("admin"), json={
        "name": rule, "metric": "cpu.cores", "condition": "greater_than", "threshold": 0,
        "duration_seconds": 0, "severity": "critical",
        "description": "{metric} is {value}, above {threshold}"})
    assert r.status_code in (200, 201), r.text


def firing_alert(suite: SuiteThread, rule: str) -> dict:
    """Configure a rule that holds at once and wait until its alert fires."""
    holding_rule(suite, rule)

    def fired():
        alerts = suite.http.get("/alerts", headers=suite.headers("viewer")).json()["alerts"]
        return next((a for a in alerts if a["rule"] == rule), None)

    return wait_until(fired, f"alert of {rule} firing", 30)


def alert_card(driver, rule: str):
    return driver.find_element(By.XPATH, f"//li[h3[starts-with(normalize-space(), {literal(rule)})]]")


def refresh_until_card(driver, rule: str):
    def shown(d):
        try:
            return alert_card(d, rule)
        except NoSuchElementException:
            button(d, "Refresh alerts").click()
            return False
    return wait_for(driver, shown, f"the alert card of {rule}")


def open_dialog(driver):
    return wait_for(driver, lambda d: d.find_element(By.XPATH, "//dialog[@open]"), "a dialog")


def rule_row(driver, name: str):
    return driver.find_element(By.XPATH, f"//table//tr[th[normalize-space()={literal(name)}]]")


@pytest.mark.console_allows("401")
def test_a_bad_token_is_refused_and_a_good_one_signs_in(suite, chrome):
    chrome.get(f"{suite.url}/ui")  # redirected to /ui/
    assert urlsplit(chrome.current_url).path == "/ui/"
    field(chrome, "Token").send_keys("not-a-token-of-this-gateway")
    button(chrome, "Sign in").click()
    wait_text(chrome, "The gateway refused this token")
    assert not link(chrome, "Overview").is_displayed()
    assert chrome.execute_script("return sessionStorage.getItem('botmon-token')") is None

    sign_in(chrome, suite.url, suite.token("operator"))
    wait_text(chrome, "test-operator (operator)")
    # Kept for the browser session: a reload stays signed in.
    chrome.refresh()
    wait_for(chrome, lambda d: heading(d, 1, "Overview"), "the Overview after a reload")
    button(chrome, "Sign out").click()
    wait_for(chrome, lambda d: field(d, "Token").is_displayed(), "the token prompt")
    assert chrome.execute_script("return sessionStorage.getItem('botmon-token')") is None


def test_overview_shows_detailed_health_and_the_status_table(suite, chrome):
    sign_in(chrome, suite.url, suite.token("viewer"))
    wait_text(chrome, "Overall status:")
    # The tables are rebuilt at every refresh: each look finds them afresh.
    def row(caption: str, name: str) -> str:
        return wait_for(chrome, lambda d: d.find_element(
            By.XPATH, f"//table[caption[contains(., '{caption}')]]//tr[th[normalize-space()='{name}']]"
        ).text, f"the {name} row")

    database = row("health/detailed", "database")
    assert "healthy" in database and " ms" in database
    cache = row("health/detailed", "cache")
    assert "not configured" in cache and "BOTMON_REDIS_URL" in cache  # the reason
    for name in ("gateway", "health", "metrics", "alerts", "logs"):
        assert "running" in row("registered services", name)
    # It refreshes by itself: the "Updated" line changes without a click.
    updated = chrome.find_element(By.XPATH, "//p[starts-with(normalize-space(), 'Updated')]").text
    wait_for(chrome, lambda d: d.find_element(
        By.XPATH, "//p[starts-with(normalize-space(), 'Updated')]").text != updated,
        "an automatic refresh")


def test_live_metrics_move_and_percentiles_chart_the_posted_events(suite, chrome):
    events = [{"type": "request", "method": "GET", "route": "/chat", "status": 200,
               "duration_ms": 40 + i} for i in range(50)]
    r = suite.http.post("/metrics/events", json={"events": events},
                        headers=suite.headers("operator"))
    assert r.status_code == 202, r.text
    sign_in(chrome, suite.url, suite.token("viewer"))
    open_view(chrome, "Metrics")
    for label in ("CPU", "Memory", "Requests", "Latency", "Active sessions", "Error rate"):
        chrome.find_element(By.XPATH, f"//figcaption[starts-with(normalize-space(), '{label}:')]")

    def cpu(d):
        return d.find_element(By.XPATH, "//figcaption[starts-with(normalize-space(), 'CPU:')]").text

    seen = set()

    def moved(d):
        seen.add(cpu(d))
        return len(seen - {"CPU: waiting…"}) >= 2
    wait_for(chrome, moved, "two different CPU figures from /ws/metrics", 30)
    # Each live chart draws on a canvas once figures arrive.
    assert len(chrome.find_elements(By.TAG_NAME, "canvas")) >= 6

    wait_text(chrome, "50 requests.")  # the performance summary of the posted events
    assert "p50 " in text_of_page(chrome)
    period = field(chrome, "Period")
    period.send_keys("24h")
    field(chrome, "Resolution").send_keys("hour")
    button(chrome, "Show percentiles").click()
    wait_text(chrome, "Over 24h (hour buckets)")


def test_search_finds_a_posted_entry_and_shows_its_metadata(suite, chrome):
    word = f"needle{uuid.uuid4().hex[:8]}"
    post_logs(suite, {"level": "warn", "service": "checkout", "message": f"payment slow {word}",
                      "metadata": {"order_id": "ord-991", "attempt": 3}},
              {"level": "info", "service": "checkout", "message": "payment ok"})
    sign_in(chrome, suite.url, suite.token("viewer"))
    open_view(chrome, "Logs")
    field(chrome, "Search").send_keys(word)
    button(chrome, "Apply filters").click()
    results = chrome.find_element(By.XPATH, "//ol[@aria-label='Search results']")
    wait_for(chrome, lambda d: word in results.text, "the posted entry in the results")
    wait_text(chrome, "1 matching entries")
    entry = results.find_element(By.XPATH, f".//summary[contains(., {literal(word)})]")
    entry.click()
    wait_for(chrome, lambda d: "ord-991" in results.text, "the entry's metadata")


def test_results_page_with_next_cursor(suite, chrome):
    post_logs(suite, *({"level": "info", "service": "pager", "message": f"line {i}"}
                       for i in range(60)))
    sign_in(chrome, suite.url, suite.token("viewer"))
    open_view(chrome, "Logs")
    field(chrome, "Service").send_keys("pager")
    button(chrome, "Apply filters").click()
    wait_text(chrome, "60 matching entries; 50 shown.")
    button(chrome, "Load more").click()
    wait_text(chrome, "60 matching entries; 60 shown.")
    assert not button(chrome, "Load more").is_displayed()


def test_live_tail_shows_a_new_entry_without_a_reload_and_keeps_the_filters(suite, chrome):
    sign_in(chrome, suite.url, suite.token("viewer"))
    open_view(chrome, "Logs")
    field(chrome, "Service").send_keys("tailed")
    field(chrome, "Level").send_keys("warn and above")
    field(chrome, "Live tail").click()
    wait_text(chrome, "Live tail on (level ≥ warn, service tailed)")
    live = chrome.find_element(By.XPATH, "//ol[@aria-label='Live tail']")
    page = chrome.execute_script("return performance.timeOrigin")

    def deliver(d):
        # The tail may start a moment after the toggle: post until one arrives.
        post_logs(suite, {"level": "info", "service": "tailed", "message": "filtered out: info"},
                  {"level": "error", "service": "other", "message": "filtered out: other"},
                  {"level": "error", "service": "tailed", "message": "tail me"})
        time.sleep(0.3)
        return "tail me" in live.text
    wait_for(chrome, deliver, "the new entry in the live tail")
    assert "filtered out" not in live.text
    assert chrome.execute_script("return performance.timeOrigin") == page  # no reload
    field(chrome, "Live tail").click()
    wait_text(chrome, "Live tail off.")


def test_an_operator_acknowledges_with_notes_and_the_api_shows_it(suite, chrome):
    alert = firing_alert(suite, "console_ack")
    sign_in(chrome, suite.url, suite.token("operator"))
    open_view(chrome, "Alerts")
    refresh_until_card(chrome, "console_ack")
    text = alert_card(chrome, "console_ack").text
    assert "firing" in text and "critical" in text and "threshold 0" in text and "Since" in text
    wait_for(chrome, lambda d: button(alert_card(d, "console_ack"), "Acknowledge").click() or True,
             "the Acknowledge button pressed")
    dialog = open_dialog(chrome)
    field(dialog, "Notes").send_keys("restarting the worker pool")
    button(dialog, "Acknowledge").click()
    wait_for(chrome, lambda d: "Acknowledged by test-operator" in alert_card(d, "console_ack").text,
             "who acknowledged, on the card")
    assert "restarting the worker pool" in alert_card(chrome, "console_ack").text
    shown = next(a for a in suite.http.get("/alerts", headers=suite.headers("viewer")).json()
                 ["alerts"] if a["alert_id"] == alert["alert_id"])
    assert shown["acknowledged"] and shown["acknowledged_by"] == "test-operator"
    assert shown["notes"] == "restarting the worker pool" and shown["acknowledged_at"]
    # The history pages show the acknowledgement too.
    wait_for(chrome, lambda d: "acknowledgement" in d.find_element(
        By.XPATH, "//table[caption[starts-with(., 'History')]]").text, "the history entry")


def test_a_viewer_is_offered_no_write_action(suite, chrome):
    firing_alert(suite, "console_viewer")
    sign_in(chrome, suite.url, suite.token("viewer"))
    wait_text(chrome, "test-viewer (viewer)")
    open_view(chrome, "Alerts")
    refresh_until_card(chrome, "console_viewer")
    wait_for(chrome, lambda d: d.find_element(By.XPATH, "//table[caption[contains(., 'rules')]]"),
             "the rules table")
    wait_for(chrome, lambda d: d.find_element(By.XPATH, "//table[caption[contains(., 'silences')]]"),
             "the silences table")
    labels = [b.get_attribute("aria-label") or b.text for b in chrome.find_elements(By.TAG_NAME, "button")]
    offered = [name for name in labels if name and name.split()[0] in
               {w.split()[0] for w in WRITE_ACTIONS}]
    assert offered == [], f"a viewer is offered {offered}"


@pytest.mark.console_allows("alerts/configure - Failed to load resource: the server responded "
                            "with a status of 400")
def test_a_rule_is_created_edited_and_deleted_through_the_form(suite, chrome):
    name = f"console_rule_{uuid.uuid4().hex[:6]}"
    sign_in(chrome, suite.url, suite.token("operator"))
    open_view(chrome, "Alerts")
    button(chrome, "New rule").click()
    dialog = open_dialog(chrome)
    field(dialog, "Name").send_keys(name)
    field(dialog, "Metric").send_keys("memory.usage_percent")
    field(dialog, "Condition").send_keys("greater than or equal")
    field(dialog, "For (seconds)").clear()
    field(dialog, "For (seconds)").send_keys("120")
    field(dialog, "Labels").send_keys("team=payments, tier=1")
    field(dialog, "On no data").send_keys("alert")
    # No threshold: the API's 400 is shown next to the Threshold field.
    button(dialog, "Create rule").click()
    error = wait_for(chrome, lambda d: "threshold" in description(dialog, "Threshold")
                     and description(dialog, "Threshold"), "the threshold error next to its field")
    assert "threshold" in error
    assert field(dialog, "Threshold").get_attribute("aria-invalid") == "true"
    # A metric nobody reports: the service's 400 names the field, shown beside Metric.
    metric = field(dialog, "Metric")
    metric.clear()
    metric.send_keys("memory.usage_percentage")
    field(dialog, "Threshold").send_keys("95")
    button(dialog, "Create rule").click()
    error = wait_for(chrome, lambda d: "unknown metric" in description(dialog, "Metric")
                     and description(dialog, "Metric"), "the metric error next to its field")
    assert "unknown metric 'memory.usage_percentage'" in error
    assert "memory.usage_percent" in error.replace("memory.usage_percentage", "")  # known ones listed
    assert field(dialog, "Threshold").get_attribute("aria-invalid") is None
    metric.clear()
    metric.send_keys("memory.usage_percent")
    button(dialog, "Create rule").click()
    wait_for(chrome, lambda d: rule_row(d, name), "the new rule in the table")
    stored = {r["name"]: r for r in suite.http.get("/alerts/rules", headers=suite.headers("viewer"))
              .json()["rules"]}[name]
    assert (stored["metric"], stored["condition"], stored["threshold"],
            stored["duration_seconds"]) == ("memory.usage_percent", "greater_than_or_equal", 95, 120)
    assert stored["labels"] == {"team": "payments", "tier": "1"} and stored["on_no_data"] == "alert"

    button(chrome, f"Edit {name}").click()
    dialog = open_dialog(chrome)
    assert field(dialog, "Name").get_attribute("readonly") is not None
    field(dialog, "Threshold").clear()
    field(dialog, "Threshold").send_keys("97.5")
    button(dialog, "Save rule").click()
    wait_for(chrome, lambda d: "97.5" in rule_row(d, name).text, "the edited threshold")
    stored = {r["name"]: r for r in suite.http.get("/alerts/rules", headers=suite.headers("viewer"))
              .json()["rules"]}[name]
    assert stored["threshold"] == 97.5 and stored["duration_seconds"] == 120
    assert stored["labels"] == {"team": "payments", "tier": "1"} and stored["on_no_data"] == "alert"

    button(chrome, f"Delete {name}").click()
    confirm = open_dialog(chrome)
    assert name in confirm.text
    button(confirm, "Delete").click()
    wait_for(chrome, lambda d: not d.find_elements(
        By.XPATH, f"//table//tr[th[normalize-space()={literal(name)}]]"), "the rule gone")
    names = [r["name"] for r in suite.http.get("/alerts/rules", headers=suite.headers("viewer"))
             .json()["rules"]]
    assert name not in names


def test_a_silence_is_created_and_expired(suite, chrome):
    sign_in(chrome, suite.url, suite.token("operator"))
    open_view(chrome, "Alerts")
    button(chrome, "New silence").click()
    dialog = open_dialog(chrome)
    field(dialog, "Value").send_keys("high_cpu")
    field(dialog, "Comment").send_keys("maintenance window")
    button(dialog, "Create silence").click()
    row = wait_for(chrome, lambda d: d.find_element(
        By.XPATH, "//table[caption[contains(., 'silences')]]"
                  "//tr[td[normalize-space()='maintenance window']]"), "the new silence")
    assert "active" in row.text and "alertname=high_cpu" in row.text
    silence_id = row.find_element(By.XPATH, "./th").text
    button(row, f"Expire {silence_id}").click()
    wait_for(chrome, lambda d: "expired" in d.find_element(
        By.XPATH, f"//tr[th[normalize-space()={literal(silence_id)}]]").text, "the silence expired")
    states = {s["silence_id"]: s["state"] for s in suite.http.get(
        "/alerts/silences", headers=suite.headers("viewer")).json()["silences"]}
    assert states[silence_id] == "expired"


def test_history_pages_forward_and_back(suite, chrome):
    # Each rule's alert goes straight to firing: one history entry apiece, 21 > one page.
    names = [f"console_history_{i}" for i in range(21)]
    for name in names:
        holding_rule(suite, name)

    def entries():
        doc = suite.http.get("/alerts/history", params={"page_size": 1000},
                             headers=suite.headers("viewer")).json()
        return len(doc["history"]) > 20
    wait_until(entries, "more than one page of history", 30)
    try:
        sign_in(chrome, suite.url, suite.token("viewer"))
        open_view(chrome, "Alerts")

        def history_page(d) -> str:
            return d.find_element(By.XPATH, "//table/caption[starts-with(., 'History')]").text
        wait_for(chrome, lambda d: history_page(d) == "History, page 1", "the first page")
        first = chrome.find_element(By.XPATH, "//table[caption[starts-with(., 'History')]]").text
        assert len(chrome.find_elements(
            By.XPATH, "//table[caption[starts-with(., 'History')]]/tbody/tr")) == 20
        button(chrome, "Next page").click()
        wait_for(chrome, lambda d: history_page(d) == "History, page 2", "the second page")
        assert chrome.find_element(
            By.XPATH, "//table[caption[starts-with(., 'History')]]").text != first
        button(chrome, "First page").click()
        wait_for(chrome, lambda d: history_page(d) == "History, page 1", "back to the first page")
    finally:
        for name in names:  # their alerts resolve: later views show only their own
            suite.http.delete(f"/alerts/rules/{name}", headers=suite.headers("admin"))


AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
VIEWS = ("Overview", "Metrics", "Logs", "Alerts")


def axe_violations(driver) -> list[dict]:
    """axe-core's critical and serious violations on the page as it is now."""
    if not hasattr(axe_violations, "source"):
        if not AXE.exists():
            pytest.fail(f"{AXE} is missing: run `npm install` (package.json pins axe-core)")
        axe_violations.source = AXE.read_text()
    driver.execute_script(axe_violations.source)
    found = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        axe.run(document, {resultTypes: ["violations"]}).then((r) => done(r.violations.map((v) =>
          ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" "))}))));""")
    return [v for v in found if v["impact"] in ("critical", "serious")]


def test_axe_finds_no_critical_or_serious_violation_in_any_view(suite, chrome):
    firing_alert(suite, "console_axe")
    fresh_tab(chrome)
    chrome.get(f"{suite.url}/ui/")
    wait_for(chrome, lambda d: field(d, "Token").is_displayed(), "the token prompt")
    assert axe_violations(chrome) == [], "the sign-in page"
    sign_in(chrome, suite.url, suite.token("operator"))
    for name in VIEWS:
        open_view(chrome, name)
        if name == "Alerts":
            refresh_until_card(chrome, "console_axe")
        else:
            time.sleep(2)  # live figures and tables in place
        assert axe_violations(chrome) == [], name
    wait_for(chrome, lambda d: button(alert_card(d, "console_axe"), "Acknowledge").click() or True,
             "the Acknowledge button pressed")
    dialog = open_dialog(chrome)
    assert axe_violations(chrome) == [], "the acknowledge dialog"
    button(dialog, "Cancel").click()
    wait_for(chrome, lambda d: not d.find_elements(By.XPATH, "//dialog[@open]"), "no dialog")
    button(chrome, "New rule").click()
    open_dialog(chrome)
    assert axe_violations(chrome) == [], "the rule form"


@pytest.mark.parametrize(("width", "height"), [(1280, 800), (390, 844)])
def test_the_layout_holds_on_a_desktop_and_a_phone(suite, chrome, width, height):
    sign_in(chrome, suite.url, suite.token("operator"))
    # After sign_in: an override holds for the tab it was set on, and sign_in opens a new one.
    chrome.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})
    try:
        assert chrome.execute_script("return innerWidth") == width
        for name in VIEWS:
            open_view(chrome, name)
            time.sleep(1.5)
            overflow = chrome.execute_script(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, f"{name} scrolls sideways by {overflow}px at {width}x{height}"
            for other in VIEWS:
                assert link(chrome, other).is_displayed()
    finally:
        chrome.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_keyboard_alone_signs_in_and_moves_between_views(suite, chrome):
    fresh_tab(chrome)
    chrome.get(f"{suite.url}/ui/")
    wait_for(chrome, lambda d: field(d, "Token").is_displayed(), "the token prompt")
    actions = ActionChains(chrome)

    def focused() -> str:
        return chrome.execute_script(
            "const e = document.activeElement; return e.getAttribute('aria-label') || e.id || "
            "e.textContent.trim()")

    actions.send_keys(Keys.TAB).perform()
    assert focused() == "Skip to content"
    while focused() != "token":
        actions.send_keys(Keys.TAB).perform()
    actions.send_keys(suite.token("viewer"), Keys.ENTER).perform()
    wait_for(chrome, lambda d: heading(d, 1, "Overview"), "the Overview")
    chrome.find_element(By.TAG_NAME, "body").click()
    for _ in range(10):
        actions.send_keys(Keys.TAB).perform()
        if focused() == "Logs":
            break
    assert focused() == "Logs"
    actions.send_keys(Keys.ENTER).perform()
    wait_for(chrome, lambda d: heading(d, 1, "Logs"), "the Logs view by keyboard")


def test_screenshots_of_the_four_views(suite, chrome, tmp_path):
    """Taken at 1280x800 into $BOTMON_CONSOLE_SCREENSHOTS (docs/ by `make console-screenshots`)."""
    out = Path(os.environ.get("BOTMON_CONSOLE_SCREENSHOTS") or tmp_path)
    firing_alert(suite, "cpu_cores_seen")
    post_logs(suite, *({"level": level, "service": service, "message": message,
                        "metadata": {"request_id": f"req_{i}"}}
                       for i, (level, service, message) in enumerate([
                           ("info", "web", "GET /chat 200 in 41 ms"),
                           ("warn", "llm", "model reply took 2.4 s"),
                           ("error", "database", "connection timeout after 5000 ms"),
                           ("info", "web", "session started")])))
    sign_in(chrome, suite.url, suite.token("operator"))
    chrome.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False})
    try:
        for name in VIEWS:
            open_view(chrome, name)
            if name == "Alerts":
                refresh_until_card(chrome, "cpu_cores_seen")
            elif name == "Metrics":
                wait_for(chrome, lambda d: len(d.find_elements(By.TAG_NAME, "canvas")) >= 7,
                         "the charts drawn")
                time.sleep(4)  # a few live points
            else:
                time.sleep(1.5)
            shot = chrome.execute_cdp_cmd("Page.captureScreenshot", {
                "format": "png", "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": 1280, "height": 800, "scale": 1}})
            png = base64.b64decode(shot["data"])
            assert png[:8] == b"\x89PNG\r\n\x1a\n"
            (out / f"console-{name.lower()}.png").write_bytes(png)
    finally:
        chrome.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
