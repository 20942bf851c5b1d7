"""No client can mint Prometheus series: label values come from bounded sets.

5,000 request events with distinct made-up methods add one series (``OTHER``),
not 5,000; a status code IANA never registered counts as its class; the
gateway's own ``botmon_gateway_requests_total`` is bounded the same way
against requests with odd methods.
"""

from __future__ import annotations

import itertools
import re
import string

from botmon.runtime.labels import HTTP_METHODS, MAX_STATUS_VALUES
from tests.harness import Suite

SERIES = re.compile(r'^botserver_requests_total\{method="([^"]*)",status="([^"]*)"\} (\S+)$',
                    re.MULTILINE)
GATEWAY = re.compile(r'^botmon_gateway_requests_total\{route="([^"]*)",method="([^"]*)",'
                     r'status="([^"]*)"\}', re.MULTILINE)


def _made_up_methods(n: int) -> list[str]:
    letters = itertools.product(string.ascii_uppercase, repeat=4)
    return ["X" + "".join(next(letters)) for _ in range(n)]


async def test_request_methods_and_statuses_are_bounded(make_settings, http):
    events = [{"type": "request", "method": m, "route": "/chat", "status": 200,
               "duration_ms": 5} for m in _made_up_methods(5000)]
    events += [{"type": "request", "method": "get", "route": "/chat", "status": status,
                "duration_ms": 5} for status in (200, 299, 418, 599)]
    async with Suite(make_settings(), components=("metrics",)) as suite:
        for start in range(0, len(events), 1000):
            r = await http.post(f"{suite.base}/metrics/events",
                                json={"events": events[start:start + 1000]},
                                headers=suite.headers("operator"))
            assert r.status_code == 202, r.text
        for method in ("PROPFIND", "BREW"):
            await http.request(method, f"{suite.base}/status", headers=suite.headers())
        text = (await http.get(f"{suite.base}/metrics/prometheus",
                               headers=suite.headers())).text
    series = {(m, s): float(v) for m, s, v in SERIES.findall(text)}
    assert series == {("OTHER", "200"): 5000.0, ("GET", "200"): 1.0, ("GET", "2xx"): 1.0,
                      ("GET", "418"): 1.0, ("GET", "5xx"): 1.0}
    gateway = GATEWAY.findall(text)
    assert gateway, text[-2000:]
    assert ("OTHER" in {m for _, m, _ in gateway}), gateway
    assert {method for _, method, _ in gateway} <= HTTP_METHODS | {"OTHER"}
    assert ("/api/v1/monitoring/status", "PROPFIND") not in {(r, m) for r, m, _ in gateway}
    assert len({status for _, _, status in gateway}) <= MAX_STATUS_VALUES
