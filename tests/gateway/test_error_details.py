"""google.rpc.Status details from a backend, and the gateway's own field errors, in "details"."""

from __future__ import annotations

import base64

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from botmon.logs.v1 import logs_service_pb2_grpc
from botmon.runtime.errors import FailedPrecondition
from tests.harness import Suite

BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"


@pytest.fixture
async def logs_suite(make_settings):
    async with Suite(make_settings(), components=("logs",)) as suite:
        yield suite


async def test_post_logs_with_nothing_valid_names_each_bad_entry(logs_suite, http):
    reply = await http.post(f"{logs_suite.base}/logs", headers=logs_suite.headers("operator"),
                            json={"logs": [{"level": "info", "service": "", "message": "x"},
                                           {"level": "loud", "service": "s", "message": "y"}]})
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    (detail,) = error["details"]
    assert detail["@type"] == BAD_REQUEST
    violations = detail["field_violations"]
    assert [v["field"] for v in violations] == ["logs[0]", "logs[1]"]
    assert "service is required" in violations[0]["description"]
    assert "loud" in violations[1]["description"]


async def test_a_bad_query_parameter_is_named_in_the_details(logs_suite, http):
    reply = await http.get(f"{logs_suite.base}/logs", headers=logs_suite.headers(),
                           params={"bogus": "1"})
    assert reply.status_code == 400, reply.text
    (detail,) = reply.json()["error"]["details"]
    assert detail["@type"] == BAD_REQUEST
    (violation,) = detail["field_violations"]
    assert violation["field"] == "bogus" and "unknown query parameter" in violation["description"]


async def test_errors_without_details_keep_an_empty_list(logs_suite, http):
    reply = await http.get(f"{logs_suite.base}/logs", headers=logs_suite.headers(),
                           params={"limit": "5000"})
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["details"] == []


class RichErrors(logs_service_pb2_grpc.LogsServiceServicer):
    """ListLogs fails with a known and an unknown detail type in its rich status."""

    async def ListLogs(self, request, context):
        known, unknown = any_pb2.Any(), any_pb2.Any(type_url="type.example.com/x.Unknown",
                                                    value=b"\x08\x01")
        known.Pack(error_details_pb2.ErrorInfo(reason="CURSOR_EXPIRED", domain="botmon",
                                               metadata={"cursor": "c1"}))
        status = status_pb2.Status(code=grpc.StatusCode.FAILED_PRECONDITION.value[0],
                                   message="cursor expired", details=[known, unknown])
        context.set_trailing_metadata((("grpc-status-details-bin",
                                        status.SerializeToString()),))
        raise FailedPrecondition("cursor expired")


async def test_every_detail_keeps_its_type_even_an_unknown_one(make_settings, http):
    async with Suite(make_settings(), components=(), servicers={"logs": RichErrors()}) as suite:
        reply = await http.get(f"{suite.base}/logs", headers=suite.headers())
    assert reply.status_code == 412, reply.text
    known, unknown = reply.json()["error"]["details"]
    assert known == {"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                     "reason": "CURSOR_EXPIRED", "domain": "botmon",
                     "metadata": {"cursor": "c1"}}
    assert unknown == {"@type": "type.example.com/x.Unknown",
                       "value": base64.b64encode(b"\x08\x01").decode()}


async def test_a_rule_with_several_problems_names_each_field(make_settings, http):
    async with Suite(make_settings(), components=("alerts", "metrics")) as suite:
        reply = await http.post(f"{suite.base}/alerts/configure", headers=suite.headers("operator"),
                                json={"name": "bad rule", "metric": "cpu.usage_percent",
                                      "condition": "above", "threshold": 1,
                                      "notify": {"webhook": "ftp://x"}})
        assert reply.status_code == 400, reply.text
        (detail,) = reply.json()["error"]["details"]
        assert detail["@type"] == BAD_REQUEST
        fields = {v["field"]: v["description"] for v in detail["field_violations"]}
        assert set(fields) == {"name", "condition", "notify.webhook"}
        assert "'above'" in fields["condition"] and "ftp://x" in fields["notify.webhook"]
        # A metric nobody reports is named the same way.
        reply = await http.post(f"{suite.base}/alerts/configure", headers=suite.headers("operator"),
                                json={"name": "ok", "metric": "cpu.nope",
                                      "condition": "greater_than", "threshold": 1})
        (violation,) = reply.json()["error"]["details"][0]["field_violations"]
        assert violation["field"] == "metric" and "cpu.usage_percent" in violation["description"]
