"""The alerts routes through the real gateway (tests/harness.py): documented JSON, 4xx on bad input."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.alerts.conftest import fast
from tests.alerts.stand_ins import MetricsStandIn, free_port
from tests.harness import Suite
from tests.waiting import eventually

DOC_RULE = {
    "name": "memory_doc_example", "type": "threshold", "metric": "memory.usage_percent",
    "condition": "greater_than", "threshold": 90, "duration_seconds": 0, "severity": "warning",
    # A closed local port: nothing here may reach the internet.
    "notify": {"webhook": f"http://127.0.0.1:{free_port()}/alerts"},
}


@pytest.fixture
async def suite(make_settings):
    metrics = MetricsStandIn({"memory.usage_percent": 40.0, "disk.free_percent": 50.0})
    settings = make_settings(alert_eval_interval=0.2, grpc_deadline=2.0, heartbeat_interval=60.0,
                             health_target=f"127.0.0.1:{free_port()}")
    async with Suite(settings, components=("alerts",), servicers={"metrics": metrics},
                     options={"alerts": {"alerts_settings": fast()}}) as s:
        s.metrics = metrics
        async with httpx.AsyncClient(timeout=10) as http:
            s.http = http
            yield s


async def test_configure_list_and_delete_rules(suite):
    http, op = suite.http, suite.headers("operator")
    created = await http.post(f"{suite.base}/alerts/configure", json=DOC_RULE, headers=op)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["created"] is True and body["rule"]["name"] == "memory_doc_example"
    replaced = await http.post(f"{suite.base}/alerts/configure",
                               json={**DOC_RULE, "threshold": 95}, headers=op)
    assert replaced.status_code == 200 and replaced.json()["rule"]["threshold"] == 95
    listed = (await http.get(f"{suite.base}/alerts/rules", headers=suite.headers())).json()
    assert "memory_doc_example" in [r["name"] for r in listed["rules"]]
    deleted = await http.delete(f"{suite.base}/alerts/rules/memory_doc_example", headers=op)
    assert deleted.status_code == 200
    missing = await http.delete(f"{suite.base}/alerts/rules/memory_doc_example", headers=op)
    assert missing.status_code == 404 and missing.json()["error"]["status"] == "NOT_FOUND"
    forbidden = await http.post(f"{suite.base}/alerts/configure", json=DOC_RULE,
                                headers=suite.headers("viewer"))
    assert forbidden.status_code == 403


BAD_BODIES = [
    ({**DOC_RULE, "metric": "memory.bogus"}, "known metrics: disk.free_percent, memory.usage_percent"),
    ({**DOC_RULE, "condition": "above"}, "condition must be one of"),
    ({**DOC_RULE, "severity": "urgent"}, "severity must be one of"),
    ({**DOC_RULE, "threshold": "high"}, "threshold"),
    ({**DOC_RULE, "duration_seconds": -3}, "duration_seconds must be between 0"),
    ({**DOC_RULE, "notify": {"webhook": "not a url"}}, "notify.webhook must be an http"),
    ({**DOC_RULE, "notify": {"email": "admin@example.com"}}, "email"),
    ({**DOC_RULE, "name": ""}, "name"),
    ({**DOC_RULE, "on_no_data": "sometimes"}, "on_no_data must be one of"),
    ({**DOC_RULE, "recovery_threshold": 99}, "recovery_threshold must be at most"),
]


@pytest.mark.parametrize(("body", "message"), BAD_BODIES, ids=[m for _, m in BAD_BODIES])
async def test_bad_rule_bodies_are_400_saying_what_to_fix(suite, body, message):
    response = await suite.http.post(f"{suite.base}/alerts/configure", json=body,
                                     headers=suite.headers("operator"))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == 400 and error["status"] == "INVALID_ARGUMENT"
    assert message in error["message"]


@pytest.mark.parametrize(("addresses", "named"), [
    (["oncall@[example.com"], "'oncall@[example.com'"),
    (["oncall\x7f@example.com"], "'oncall\\x7f@example.com'"),
    # As many as a rule may list, each as long as an address may be: the first few are named.
    ([f"{i:02}" + "x" * 240 + "@[example.com" for i in range(49)],
     "'00" + "x" * 61 + "…', '01" + "x" * 61 + "…'"),
], ids=["bracket", "DEL", "fifty-long"])
async def test_an_address_that_cannot_be_sent_to_is_400_naming_it(suite, addresses, named):
    http, op = suite.http, suite.headers("operator")
    body = {**DOC_RULE, "notify": {"email": ["team@example.net", *addresses]}}
    response = await http.post(f"{suite.base}/alerts/configure", json=body, headers=op)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    [violation] = error["details"][0]["field_violations"]
    assert violation["field"] == "notify.email"
    assert violation["description"].startswith(f"notify.email {named}")
    assert (f"and {len(addresses) - 5} more:" in violation["description"]) == (len(addresses) > 5)
    assert "team@" not in violation["description"]
    assert violation["description"] in error["message"]
    listed = (await http.get(f"{suite.base}/alerts/rules", headers=suite.headers())).json()
    assert listed["rules"] == []


async def test_malformed_json_is_400(suite):
    response = await suite.http.post(f"{suite.base}/alerts/configure", content=b"{not json",
                                     headers={**suite.headers("operator"),
                                              "Content-Type": "application/json"})
    assert response.status_code == 400


async def test_alert_listing_acknowledge_and_history(suite):
    http, op = suite.http, suite.headers("operator")
    assert (await http.post(f"{suite.base}/alerts/configure", json=DOC_RULE,
                            headers=op)).status_code == 201
    suite.metrics.values["memory.usage_percent"] = 93

    async def firing():
        body = (await http.get(f"{suite.base}/alerts?state=firing",
                               headers=suite.headers())).json()
        return body if body.get("alerts") else None

    body = await eventually(firing)
    assert body["active_count"] == 1 and body["warning_count"] == 1
    assert body["critical_count"] == 0
    [alert] = body["alerts"]
    assert alert["alert_id"].startswith("alt_") and alert["severity"] == "warning"
    assert alert["type"] == "memory_doc_example" and alert["rule"] == "memory_doc_example"
    assert alert["current_value"] == 93 and alert["threshold"] == 90
    assert alert["triggered_at"].endswith("Z") and alert["message"]

    bad = await http.get(f"{suite.base}/alerts?state=bogus", headers=suite.headers())
    assert bad.status_code == 400 and "state must be one of" in bad.json()["error"]["message"]

    unknown = await http.post(f"{suite.base}/alerts/alt_0000000000000000/acknowledge",
                              json={"acknowledged_by": "admin"}, headers=op)
    assert unknown.status_code == 404
    acked = await http.post(f"{suite.base}/alerts/{alert['alert_id']}/acknowledge",
                            json={"notes": "Investigating the issue"}, headers=op)
    assert acked.status_code == 200, acked.text
    acked = acked.json()["alert"]
    # acknowledged_by defaults to the token's subject.
    assert acked["acknowledged"] is True and acked["acknowledged_by"] == "test-operator"
    assert acked["notes"] == "Investigating the issue" and acked["acknowledged_at"].endswith("Z")
    listed = (await http.get(f"{suite.base}/alerts?state=firing",
                             headers=suite.headers())).json()["alerts"]
    assert listed[0]["acknowledged_by"] == "test-operator"

    page = (await http.get(f"{suite.base}/alerts/history?page_size=1",
                           headers=suite.headers())).json()
    assert len(page["history"]) == 1 and page["next_page_token"]
    rest = (await http.get(f"{suite.base}/alerts/history",
                           params={"page_token": page["next_page_token"],
                                   "rule": "memory_doc_example"},
                           headers=suite.headers())).json()
    kinds = [h["kind"] for h in page["history"] + rest["history"]]
    assert "acknowledgement" in kinds and "transition" in kinds
    bad = await http.get(f"{suite.base}/alerts/history?page_size=0x", headers=suite.headers())
    assert bad.status_code == 400


async def test_silences_over_rest(suite):
    http, op = suite.http, suite.headers("operator")
    ends = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    created = await http.post(f"{suite.base}/alerts/silences", headers=op, json={
        "matchers": [{"name": "alertname", "value": "high_.*", "is_regex": True}],
        "ends_at": ends, "comment": "deploy"})
    assert created.status_code == 200, created.text
    silence = created.json()["silence"]
    assert silence["state"] == "active" and silence["created_by"] == "test-operator"
    listed = (await http.get(f"{suite.base}/alerts/silences", headers=suite.headers())).json()
    assert [s["silence_id"] for s in listed["silences"]] == [silence["silence_id"]]
    expired = await http.delete(f"{suite.base}/alerts/silences/{silence['silence_id']}",
                                headers=op)
    assert expired.status_code == 200 and expired.json()["silence"]["state"] == "expired"
    bad = await http.post(f"{suite.base}/alerts/silences", headers=op,
                          json={"matchers": [], "ends_at": ends})
    assert bad.status_code == 400 and "at least one matcher" in bad.json()["error"]["message"]
    bad = await http.post(f"{suite.base}/alerts/silences", headers=op,
                          json={"matchers": [{"name": "alertname", "value": "x"}],
                                "ends_at": "yesterday"})
    assert bad.status_code == 400
