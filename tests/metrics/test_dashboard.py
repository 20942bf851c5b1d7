"""The Grafana dashboard: complete, generated from the catalogue, and every panel has data
in a real Prometheus scraping the suite through the gateway."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import time

import httpx
import pytest
from google.protobuf import json_format

from botmon.metrics.v1 import metrics_pb2
from botmon.metrics.v1 import metrics_service_pb2 as pb
from services.export.sinks import otlp
from services.metrics import dashboard
from services.metrics.catalogue import FAMILIES, family_names_in
from tests.conftest import free_port
from tests.export.conftest import export_options
from tests.export.receivers import GrpcReceiver
from tests.harness import Suite

REQUIRED_PANELS = {"Request Rate", "Latency Percentiles", "Error Rate", "Active Sessions",
                   "Active Conversations", "CPU", "Memory", "Disk", "Network",
                   "Component Health", "Active Alerts"}


def panels(model: dict) -> list[dict]:
    return [p for p in model["panels"] if p["type"] != "row"]


async def test_dashboard_is_complete_and_importable(start_metrics):
    async with start_metrics() as (_, stub):
        reply = await stub.GetGrafanaDashboard(pb.GetGrafanaDashboardRequest())
    model = json_format.MessageToDict(reply.dashboard)
    assert model == json.loads(json.dumps(dashboard.build()))
    assert model["uid"] == dashboard.UID and model["title"] == "BotServer Monitoring"
    assert model["schemaVersion"] >= 36
    variable = model["templating"]["list"][0]
    assert (variable["name"], variable["type"], variable["query"]) == \
        ("datasource", "datasource", "prometheus")
    assert [p["title"] for p in model["panels"] if p["type"] == "row"]
    assert REQUIRED_PANELS <= {p["title"] for p in panels(model)}
    known = {f.name for f in FAMILIES}
    cells = set()
    for panel in panels(model):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["query"] == panel["targets"][0]["expr"]
        for target in panel["targets"]:
            used = family_names_in(target["expr"])
            assert used and used <= known, (panel["title"], used - known)
        grid = {k: int(v) for k, v in panel["gridPos"].items()}  # Struct numbers are floats
        area = {(grid["x"] + dx, grid["y"] + dy) for dx in range(grid["w"])
                for dy in range(grid["h"])}
        assert not area & cells, f"{panel['title']} overlaps another panel"
        assert grid["x"] + grid["w"] <= 24
        cells |= area
    ids = [p["id"] for p in model["panels"]]
    assert len(ids) == len(set(ids))


def test_provisioned_dashboard_is_fresh():
    assert dashboard.DASHBOARD_FILE.read_text() == dashboard.render(), \
        "deploy/grafana/dashboards/botmon.json is stale: run python -m services.metrics.dashboard"


def test_kubernetes_dashboard_configmap_is_fresh():
    assert dashboard.CONFIGMAP_FILE.read_text() == dashboard.render_configmap(), \
        "the dashboard ConfigMap is stale: run python -m services.metrics.dashboard"


def _events(now: float, i: int) -> list[metrics_pb2.Event]:
    statuses = (200, 200, 201, 404, 500, 504)
    events = [metrics_pb2.Event(type="request", method=("GET", "POST")[j % 2], route="/chat",
                                status=statuses[(i + j) % len(statuses)],
                                duration_ms=5.0 + 37 * j, bytes=512) for j in range(12)]
    events += [metrics_pb2.Event(type="session_started", session_id=f"s{i}"),
               metrics_pb2.Event(type="conversation_started", conversation_id=f"c{i}"),
               metrics_pb2.Event(type="conversation_completed", conversation_id=f"c{i - 1}",
                                 messages=3 + i % 5)]
    return events


@contextlib.contextmanager
def prometheus(tmp_path, target: str, token: str):
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(json.dumps({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{
            "job_name": "botmon",
            "metrics_path": "/api/v1/monitoring/metrics/prometheus",
            "authorization": {"type": "Bearer", "credentials": token},
            "static_configs": [{"targets": [target]}],
        }],
    }))
    log = open(tmp_path / "prometheus.log", "wb")
    proc = subprocess.Popen(["prometheus", f"--config.file={config}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


@pytest.mark.skipif(not shutil.which("prometheus"),
                    reason="prometheus is not installed (Debian package 'prometheus')")
@pytest.mark.timeout(90)
async def test_every_panel_query_returns_data_from_prometheus(make_settings, tmp_path):
    queries = {(p["title"], t["expr"]) for p in panels(dashboard.build()) for t in p["targets"]}
    # An export destination too, so that the export panels have series.
    receiver = GrpcReceiver()
    await receiver.up()
    sinks = {"otlp": otlp.Settings(endpoint=receiver.endpoint)}
    async with Suite(make_settings(), components=("health", "metrics", "alerts", "export"),
                     options=export_options(sinks)) as suite, \
            httpx.AsyncClient(timeout=10) as http:
        url = f"{suite.base}/metrics/events"
        with prometheus(tmp_path, f"127.0.0.1:{suite.port}", suite.tokens["viewer"]) as prom:
            missing = set(queries)
            deadline = time.monotonic() + 60
            i = 0
            while missing and time.monotonic() < deadline:
                i += 1
                body = json_format.MessageToDict(pb.RecordEventsRequest(
                    events=_events(time.time(), i)), preserving_proto_field_name=True)
                reply = await http.post(url, json=body, headers=suite.headers("operator"))
                assert reply.status_code == 202, reply.text
                for title, expr in sorted(missing):
                    try:
                        answer = (await http.get(f"{prom}/api/v1/query",
                                                 params={"query": expr})).json()
                    except (httpx.TransportError, ValueError):
                        break  # Prometheus is still starting (no answer, or not yet JSON)
                    assert answer["status"] == "success", (title, expr, answer)
                    if answer["data"]["result"]:
                        missing.discard((title, expr))
                await asyncio.sleep(0.5)
    await receiver.down()
    assert not missing, f"panels without data: {sorted(missing)}"
