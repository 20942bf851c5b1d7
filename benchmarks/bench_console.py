"""Issue 11's console in headless Chromium: first render of Overview, and the live tail at load.

The suite runs as real processes (``benchmarks.cluster``: health, metrics, alerts, logs
and one gateway); the browser is Debian's Chromium under Selenium
(``tests.console.chromium``), nothing downloaded.

- **First render of Overview.** A fresh browser profile each round (a cold cache),
  the token placed in sessionStorage before the page's own scripts run; the time
  from navigation start until both Overview tables (``/health/detailed`` components
  and ``/status`` services) are in the document, with the bytes transferred for it
  (every response's ``transferSize``: HTML, CSS, modules, API answers). Baseline,
  same browser and gateway: the navigation to ``/api/v1/monitoring/health/live``
  (one small JSON answer, nothing to run).
- **Live tail at 1,000 lines/s.** The Logs view with ``Live tail`` on while a
  writer posts 250 lines every 250 ms for ``SECONDS``; a ``PerformanceObserver``
  for ``longtask`` records the longest main-thread task, and the lag from the last
  post to its line on screen is taken. Baseline: the longest task over the same
  time with the tail on and nothing posted. The main thread's CPU time over the
  window (CDP ``Performance.getMetrics``, thread ticks) is printed too: unlike a
  long task's wall-clock length, it does not grow with other load on the machine.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from selenium.webdriver.common.by import By

from benchmarks.cluster import API, Cluster
from benchmarks.processes import Processes, figure
from tests.console.chromium import browser, button, field, link

__all__ = ["main"]

ROUNDS = int(os.environ.get("BOTMON_BENCH_CONSOLE_ROUNDS", "5"))
SECONDS = float(os.environ.get("BOTMON_BENCH_CONSOLE_SECONDS", "10"))
LINES_PER_SECOND = 1000
BATCH = 250
TARGET_RENDER_MS = 1000.0
TARGET_LONGTASK_MS = 100.0
HUGE = "100000000/minute"

# Marks when both Overview tables are in the document (performance.now(), ms since navigation).
RENDER_PROBE = """
sessionStorage.setItem("botmon-token", %s);
new MutationObserver((changes, observer) => {
  const captions = [...document.querySelectorAll("table caption")].map((c) => c.textContent);
  if (captions.some((c) => c.includes("health/detailed")) &&
      captions.some((c) => c.includes("registered services"))) {
    window.__overviewRendered = performance.now();
    observer.disconnect();
  }
}).observe(document, {childList: true, subtree: true});
"""
BYTES = """
const entries = [...performance.getEntriesByType("navigation"),
                 ...performance.getEntriesByType("resource")];
return entries.reduce((sum, e) => sum + e.transferSize, 0);
"""
LONGTASKS = """
window.__longest = 0;
window.__longtasks = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    window.__longest = Math.max(window.__longest, entry.duration);
    window.__longtasks += 1;
  }
}).observe({type: "longtask"});
window.__drawn = 0;
new MutationObserver((records) => {
  for (const record of records) window.__drawn += record.addedNodes.length;
}).observe(document.querySelector('ol[aria-label="Live tail"]'), {childList: true});
"""


def _wait(driver, script: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.02)
    raise RuntimeError(f"not reached within {timeout:g}s: {script}")


def first_render(cluster: Cluster) -> dict[str, float]:
    """One cold load of the console: ms to the rendered Overview, bytes, and the baseline."""
    url = cluster.base(0).removesuffix(API)
    with browser() as driver:
        driver.get(f"{url}{API}/health/live")
        live_ms = driver.execute_script(
            "const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd")
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {
            "source": RENDER_PROBE % json.dumps(cluster.tokens["viewer"])})
        driver.get(f"{url}/ui/")
        rendered = _wait(driver, "return window.__overviewRendered")
        time.sleep(0.2)  # the answers' resource entries complete
        return {"render_ms": rendered, "bytes": driver.execute_script(BYTES),
                "baseline_ms": live_ms}


def _post_lines(cluster: Cluster, stop: threading.Event, sent: list[int]) -> None:
    """Post BATCH lines every BATCH/LINES_PER_SECOND s until ``stop``; numbers them in order."""
    headers = {**cluster.headers("operator"), "Content-Type": "application/json"}
    period = BATCH / LINES_PER_SECOND
    next_at = time.monotonic()
    while not stop.is_set():
        first = sent[0]
        body = json.dumps({"logs": [{"level": "info", "service": "bench-tail",
                                     "message": f"line {first + i} of the console benchmark",
                                     "metadata": {"n": first + i}}
                                    for i in range(BATCH)]}).encode()
        request = urllib.request.Request(f"{cluster.base(0)}/logs", body, headers, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
        sent[0] += BATCH
        next_at += period
        time.sleep(max(0.0, next_at - time.monotonic()))


def _main_thread_seconds(driver) -> float:
    """CPU time of the page's main thread so far (CDP Performance, thread ticks)."""
    metrics = driver.execute_cdp_cmd("Performance.getMetrics", {})["metrics"]
    return next(m["value"] for m in metrics if m["name"] == "TaskDuration")


def _tail_under_load(driver, cluster: Cluster) -> dict[str, float]:
    """Post at 1,000 lines/s for SECONDS; the longest task and the last line's lag."""
    driver.execute_script("window.__longest = 0; window.__longtasks = 0; window.__drawn = 0;")
    before = _main_thread_seconds(driver)
    stop, sent = threading.Event(), [0]
    writer = threading.Thread(target=_post_lines, args=(cluster, stop, sent), daemon=True)
    started = time.monotonic()
    writer.start()
    time.sleep(SECONDS)
    stop.set()
    writer.join(30)
    posted_s = time.monotonic() - started
    busy = _main_thread_seconds(driver) - before
    last = f"line {sent[0] - 1} of the console benchmark"
    done = time.monotonic()
    live = driver.find_element(By.XPATH, "//ol[@aria-label='Live tail']")
    while last not in live.find_element(By.XPATH, "./li[1]").text:
        if time.monotonic() > done + 30:
            raise RuntimeError(f"{last!r} never reached the live tail")
        time.sleep(0.02)
    return {"longest_ms": driver.execute_script("return window.__longest"),
            "longtasks": driver.execute_script("return window.__longtasks"),
            "lines": sent[0], "lines_per_second": sent[0] / posted_s,
            "drawn": driver.execute_script("return window.__drawn"),
            "lag_ms": (time.monotonic() - done) * 1000, "busy": busy / posted_s,
            "in_view": driver.execute_script(
                "return document.querySelector('ol[aria-label=\"Live tail\"]').children.length")}


def live_tail(cluster: Cluster) -> dict[str, float]:
    """The longest main-thread task with the tail idle, then at 1,000 lines/s."""
    url = cluster.base(0).removesuffix(API)
    with browser() as driver:
        driver.get(f"{url}/ui/")
        field(driver, "Token").send_keys(cluster.tokens["viewer"])
        button(driver, "Sign in").click()
        _wait(driver, "return document.querySelector('nav') && !document.querySelector('nav').hidden")
        link(driver, "Logs").click()
        _wait(driver, "return document.title.startsWith('Logs')")
        field(driver, "Service").send_keys("bench-tail")
        field(driver, "Live tail").click()
        time.sleep(1.0)  # the tail's stream is open
        driver.execute_cdp_cmd("Performance.enable", {"timeDomain": "threadTicks"})
        driver.execute_script(LONGTASKS)
        time.sleep(SECONDS)
        idle = driver.execute_script("return window.__longest")
        return {"idle_longest_ms": idle, **_tail_under_load(driver, cluster)}


def _check(what: str, value: float, target: float) -> str:
    return f"# target {what} <= {target:g} ms: {value:.1f} ms " \
           f"{'met' if value <= target else 'NOT met'}"


def main() -> None:
    """Measure both figures against their same-run baselines and print them."""
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="botmon-bench-console-") as tmp, \
            Processes(Path(tmp)) as procs:
        cluster = Cluster(procs, Path(tmp),
                          replicas={"health": 1, "metrics": 1, "alerts": 1, "logs": 1},
                          env={"BOTMON_RATE_LIMITS": f"ingest={HUGE},logs={HUGE},default={HUGE}"})
        cluster.start()
        cluster.wait_ready(gateway_path="/status")
        rounds = [first_render(cluster) for _ in range(ROUNDS)]
        tail = live_tail(cluster)
    render = statistics.median(r["render_ms"] for r in rounds)
    figure("console_overview_first_render_median", render, "ms",
           statistics.median(r["baseline_ms"] for r in rounds))
    figure("console_overview_first_render_max", max(r["render_ms"] for r in rounds), "ms",
           max(r["baseline_ms"] for r in rounds))
    print(f"# bytes transferred for the first render: {statistics.median(r['bytes'] for r in rounds):,.0f}"
          f" (cold cache, {ROUNDS} rounds, each a fresh Chromium profile)")
    print(_check("Overview first render (median)", render, TARGET_RENDER_MS))
    figure("console_live_tail_longest_task", tail["longest_ms"], "ms", tail["idle_longest_ms"])
    print(_check("longest main-thread task at 1,000 lines/s", tail["longest_ms"],
                 TARGET_LONGTASK_MS))
    print(f"# live tail: {tail['lines']:,} lines posted at {tail['lines_per_second']:,.0f} lines/s "
          f"for {SECONDS:g}s, {tail['longtasks']} tasks over 50 ms, main thread busy "
          f"{tail['busy'] * 100:.0f} % of the time (CPU), last line on screen "
          f"{tail['lag_ms']:.0f} ms after its post returned, {tail['in_view']} lines in view")
    print(f"# live tail: {tail['drawn']:,} of the {tail['lines']:,} lines drawn "
          f"({tail['drawn'] / tail['lines'] * 100:.1f} %)")
    print(f"# {os.cpu_count()} CPUs, 1-min load average {load_before:.1f} before and "
          f"{os.getloadavg()[0]:.1f} after (other work on the machine skews the figures)")


if __name__ == "__main__":
    main()
