"""Who acknowledged an alert or created a silence is the authenticated caller, never a name
from the body: an operator cannot record an action as someone else's. The name given is kept
as a note."""

from __future__ import annotations

import datetime

from tests.waiting import eventually


async def test_acknowledged_by_is_the_token_subject(alerts_suite, http):
    async with alerts_suite() as suite:
        r = await http.post(f"{suite.base}/alerts/configure", headers=suite.headers("operator"),
                            json={"name": "hot", "metric": "memory.usage_percent",
                                  "condition": "greater_than", "threshold": 50,
                                  "duration_seconds": 0})
        assert r.status_code == 201, r.text
        suite.metrics.values["memory.usage_percent"] = 80.0

        async def firing():
            body = (await http.get(f"{suite.base}/alerts", headers=suite.headers())).json()
            return body["alerts"]
        [alert] = await eventually(firing)
        r = await http.post(f"{suite.base}/alerts/{alert['alert_id']}/acknowledge",
                            headers=suite.headers("operator"),
                            json={"acknowledged_by": "alice", "notes": "on it"})
        assert r.status_code == 200, r.text
        acked = r.json()["alert"]
        assert acked["acknowledged_by"] == "test-operator"
        assert acked["notes"] == "on it (on behalf of alice)"
        [listed] = await firing()
        assert listed["acknowledged_by"] == "test-operator"


async def test_created_by_is_the_token_subject(alerts_suite, http):
    ends = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
            ).strftime("%Y-%m-%dT%H:%M:%SZ")
    async with alerts_suite() as suite:
        r = await http.post(f"{suite.base}/alerts/silences", headers=suite.headers("operator"),
                            json={"matchers": [{"name": "alertname", "value": "hot"}],
                                  "ends_at": ends, "comment": "deploy", "created_by": "alice"})
        assert r.status_code == 200, r.text
        silence = r.json()["silence"]
        assert silence["created_by"] == "test-operator"
        assert silence["comment"] == "deploy (on behalf of alice)"
        listed = (await http.get(f"{suite.base}/alerts/silences",
                                 headers=suite.headers())).json()["silences"]
        assert [s["created_by"] for s in listed] == ["test-operator"]
