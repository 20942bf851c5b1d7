"""Schemathesis against the gateway's own OpenAPI document, with every role and without a token.

The whole suite runs in-process (health, metrics, alerts, logs and the gateway);
the document is loaded from ``/openapi.json`` with a viewer token. Every
operation is driven with schema-conforming and schema-violating inputs, and each
generated request is sent four times — without a token and with a viewer,
operator and admin token. Always: no 5xx, the status code is documented, the
content type and body match the document. Then 401 without a token, 403 when the
role is below the one CONTRACT §3 names, and neither when it is enough.

Not covered here: the WebSocket routes (an upgrade, not a request/response
operation; tests/gateway/test_ws.py and tests/security cover them) and
``/openapi.json`` itself, which Schemathesis leaves out of the operations of the
document it loaded from there (tests/security covers its roles).
"""

from __future__ import annotations

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from botmon.runtime.config import Settings
from gateway.openapi import build_openapi
from services.alerts.config import AlertsSettings
from tests.conftest import free_port
from tests.fuzz.live import ThreadedSuite
from tests.harness import COMPONENTS
from tests.security.contract import ROLES, expected_role, rank

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]
#: Examples per operation and mode: ~30 operations x 2 modes x 4 callers stays near a minute.
EXAMPLES = {GenerationMode.POSITIVE: 25, GenerationMode.NEGATIVE: 12}
REQUEST_TIMEOUT = 15

OPERATIONS = sorted(
    (path, method.upper())
    for path, item in build_openapi()["paths"].items()
    for method in item
    if "/ws/" not in path and path != "/openapi.json"
)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """The running suite and the document it serves."""
    closed = f"http://127.0.0.1:{free_port()}/"
    settings = Settings.from_env(
        {}, data_dir=tmp_path_factory.mktemp("fuzz"),
        # Rules the fuzzer creates must not fire and notify anything during the run.
        alert_eval_interval=3600.0, pagerduty_url=closed, sms_gateway_url=closed)
    # Nor may a rule's webhook, Slack or Teams URL reach any address at all.
    alerts = AlertsSettings.from_env({"BOTMON_WEBHOOK_ALLOW": "!0.0.0.0/0,!::/0"})
    with ThreadedSuite(settings, COMPONENTS,
                       options={"alerts": {"alerts_settings": alerts}}) as suite:
        schema = schemathesis.openapi.from_url(f"{suite.url}/openapi.json",
                                               headers=suite.headers("viewer"),
                                               timeout=REQUEST_TIMEOUT)
        with requests.Session() as session:
            yield suite, schema, session


def _callers(suite) -> list[tuple[str | None, dict[str, str]]]:
    return [(None, {}), *((role, suite.headers(role)) for role in ROLES)]


def _leaves_auth_alone(case) -> bool:
    """False for a negative case that mutates the Authorization header: the callers set it."""
    data = case.meta.phase.data if case.meta is not None else None
    return getattr(data, "parameter", None) != "Authorization"


def _negatable(operation) -> bool:
    """Whether any input can violate the schema (a path string cannot: every text is one)."""
    definition = operation.definition.raw
    return bool(definition.get("requestBody")) or any(
        p["in"] != "path" or p["schema"].get("type") != "string"
        for p in definition.get("parameters", ()))


@pytest.mark.parametrize("mode", list(EXAMPLES), ids=str)
@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=lambda v: v)
def test_operation_conforms_for_every_caller(live, path, method, mode):
    suite, schema, session = live
    operation = schema[path][method]
    if mode is GenerationMode.NEGATIVE and not _negatable(operation):
        pytest.skip("no parameter or body can violate the schema")
    needed = expected_role(method, path)
    callers = _callers(suite)

    @settings(max_examples=EXAMPLES[mode], deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate, Phase.shrink],
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode).filter(_leaves_auth_alone))
    def check(case):
        for role, headers in callers:
            response = case.call(base_url=suite.url, session=session, headers=headers,
                                 timeout=REQUEST_TIMEOUT)
            case.validate_response(response, checks=CHECKS, headers=headers)
            status = response.status_code
            who = role or "no token"
            if needed is None:
                assert status not in (401, 403), f"{who}: public route answered {status}"
            elif role is None:
                assert status == 401, f"no token: {status} {response.text[:200]}"
                assert response.headers["www-authenticate"][0].startswith("Bearer")
            elif rank(role) < rank(needed):
                assert status == 403, f"{who} needs {needed}: {status} {response.text[:200]}"
            else:
                assert status not in (401, 403), f"{who}: {status} {response.text[:200]}"

    check()


EXAMPLE_BODIES = sorted(
    (path, method.upper())
    for path, item in build_openapi()["paths"].items()
    for method, op in item.items()
    if "example" in op.get("requestBody", {}).get("content", {}).get("application/json", {})
    and "{" not in path
)


@pytest.mark.parametrize(("path", "method"), EXAMPLE_BODIES, ids=lambda v: v)
def test_documented_examples_are_accepted(live, path, method):
    """The fuzzers start from these bodies, and readers copy them: each must succeed."""
    suite, schema, session = live
    operation = schema[path][method]
    example = operation.definition.raw["requestBody"]["content"]["application/json"]["example"]
    response = session.request(method, suite.url + path, json=example, timeout=REQUEST_TIMEOUT,
                               headers=suite.headers(expected_role(method, path)))
    assert 200 <= response.status_code < 300, response.text[:300]
    errors = response.json().get("errors")
    assert not errors, errors
