"""Rule descriptions and silence matchers cannot be made to eat memory or CPU.

* A description is a template of bare ``{name}`` placeholders: ``{value:>100000000}``
  (a 100 MB padding per alert message) or a conversion is a 400 naming the field.
* Silence regexes run on RE2, in time linear in the label: ``(a+)+b`` against
  ``aaa…a`` answers at once (Python's ``re`` backtracks for seconds, blocking the
  alerts process), and a pattern RE2 cannot run (a backreference) is a 400.
"""

from __future__ import annotations

import datetime

import httpx
import pytest

from tests.waiting import eventually

RULE = {"name": "padded", "metric": "memory.usage_percent", "condition": "greater_than",
        "threshold": 50, "duration_seconds": 0}


def _in(seconds: float) -> str:
    moment = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("description", [
    "{value:>100000000}", "memory at {value:{threshold}}", "{metric!r} is high",
    "{value:,>99999999.9}",
])
async def test_description_placeholders_must_be_bare(alerts_suite, http, description):
    async with alerts_suite() as suite:
        r = await http.post(f"{suite.base}/alerts/configure",
                            json={**RULE, "description": description},
                            headers=suite.headers("operator"))
        assert r.status_code == 400, r.text[:300]
        assert "description" in r.json()["error"]["message"]
        rules = (await http.get(f"{suite.base}/alerts/rules", headers=suite.headers())).json()
        assert rules["rules"] == []


async def test_bare_placeholders_are_filled(alerts_suite, http):
    async with alerts_suite() as suite:
        r = await http.post(f"{suite.base}/alerts/configure",
                            json={**RULE, "description": "{metric} at {value} (> {threshold})"},
                            headers=suite.headers("operator"))
        assert r.status_code == 201, r.text
        suite.metrics.values["memory.usage_percent"] = 75.0

        async def message():
            alerts = (await http.get(f"{suite.base}/alerts", headers=suite.headers())).json()
            return [a["message"] for a in alerts["alerts"] if a["rule"] == "padded"]
        assert await eventually(message) == ["memory.usage_percent at 75 (> 50)"]


async def test_a_backtracking_pattern_answers_at_once(alerts_suite, make_settings):
    """26 ``a`` against ``(a+)+b``: 4.6 s per match with backtracking, microseconds on RE2."""
    async with alerts_suite() as suite, httpx.AsyncClient(timeout=10) as http:
        r = await http.post(f"{suite.base}/alerts/configure",
                            json={**RULE, "labels": {"team": "a" * 26}},
                            headers=suite.headers("operator"))
        assert r.status_code == 201, r.text
        r = await http.post(f"{suite.base}/alerts/silences", headers=suite.headers("operator"),
                            json={"matchers": [{"name": "team", "value": "(a+)+b",
                                                "is_regex": True}],
                                  "ends_at": _in(3600), "comment": "backtracking probe"})
        assert r.status_code == 200, r.text
        suite.metrics.values["memory.usage_percent"] = 75.0
        # Firing means the evaluator matched the label against the silence at least once.
        await eventually(lambda: _firing(http, suite), within=10)
        # The matcher runs again for every listed alert; a generous bound, not a stopwatch:
        # backtracking takes seconds per match, RE2 microseconds.
        for _ in range(3):
            r = await http.get(f"{suite.base}/alerts", headers=suite.headers(),
                               timeout=2)
            assert r.status_code == 200
            [alert] = r.json()["alerts"]
            assert alert["silenced"] is False


async def _firing(http, suite) -> bool:
    r = await http.get(f"{suite.base}/alerts", headers=suite.headers(), timeout=10)
    return any(a["rule"] == "padded" for a in r.json()["alerts"])


@pytest.mark.parametrize(("matcher", "message"), [
    ({"name": "team", "value": "(a)\\1", "is_regex": True}, "RE2"),
    ({"name": "team", "value": "(?=a)a", "is_regex": True}, "RE2"),
    ({"name": "t" * 200, "value": "x"}, "matchers[0].name must be at most"),
])
async def test_matchers_re2_cannot_run_or_too_long_are_400(alerts_suite, http, matcher, message):
    async with alerts_suite() as suite:
        r = await http.post(f"{suite.base}/alerts/silences", headers=suite.headers("operator"),
                            json={"matchers": [matcher], "ends_at": _in(3600),
                                  "comment": "probe"})
        assert r.status_code == 400, r.text[:300]
        assert message in r.json()["error"]["message"]
