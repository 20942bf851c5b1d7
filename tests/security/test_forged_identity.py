"""Identity metadata is believed only from a holder of the internal credential (issue 10)."""

from __future__ import annotations

import time

import grpc
import httpx
import pytest
from google.protobuf import timestamp_pb2

from botmon.alerts.v1 import alert_pb2, alerts_service_pb2, alerts_service_pb2_grpc
from botmon.debug.v1 import debug_service_pb2, debug_service_pb2_grpc
from botmon.runtime.channels import open_channel
from tests.harness import Suite

FORGED = (("x-botmon-subject", "mallory"), ("x-botmon-role", "admin"))


def _silence() -> alerts_service_pb2.CreateSilenceRequest:
    ends = timestamp_pb2.Timestamp(seconds=int(time.time()) + 3600)
    return alerts_service_pb2.CreateSilenceRequest(silence=alert_pb2.Silence(
        matchers=[alert_pb2.Matcher(name="alertname", value="cpu_hot")], ends_at=ends,
        comment="maintenance"))


@pytest.fixture
async def suite(make_settings):
    async with Suite(make_settings(), components=("alerts",)) as suite:
        yield suite


def _bearer(token: str) -> tuple[str, str]:
    return ("authorization", f"Bearer {token}")


async def test_forged_role_without_the_internal_credential_is_ignored(suite):
    async with open_channel(suite.settings.target("alerts")) as channel:
        debug = debug_service_pb2_grpc.DebugServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await debug.GetDebugInfo(debug_service_pb2.GetDebugInfoRequest(), timeout=5,
                                     metadata=(_bearer(suite.tokens["viewer"]), *FORGED))
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "'viewer'" in refused.value.details()
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await debug.GetDebugInfo(debug_service_pb2.GetDebugInfoRequest(), timeout=5,
                                     metadata=FORGED)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_forged_subject_does_not_become_the_actor(suite):
    async with open_channel(suite.settings.target("alerts")) as channel:
        reply = await alerts_service_pb2_grpc.AlertsServiceStub(channel).CreateSilence(
            _silence(), timeout=5, metadata=(_bearer(suite.tokens["operator"]), *FORGED))
    assert reply.silence.created_by == "test-operator"


async def test_gateway_forwards_the_callers_subject(suite):
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.post(f"{suite.base}/alerts/silences", headers={
            **suite.headers("operator"), "x-botmon-subject": "mallory"},
            json={"matchers": [{"name": "alertname", "value": "cpu_hot"}],
                  "ends_at": "2099-01-01T00:00:00Z", "comment": "maintenance"})
    assert r.status_code in (200, 201), r.text
    assert r.json()["silence"]["created_by"] == "test-operator"
