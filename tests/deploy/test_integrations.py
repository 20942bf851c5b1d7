"""The pull-side recipes under deploy/integrations/ parse and scrape botmon's exposition with a token."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2] / "deploy" / "integrations"
EXPOSITION = "/api/v1/monitoring/metrics/prometheus"


def load_yaml(relative: str):
    return yaml.safe_load((ROOT / relative).read_text())


def test_every_vendor_has_a_recipe():
    assert sorted(p.name for p in ROOT.iterdir() if p.is_dir()) == [
        "cloudwatch", "datadog", "elasticsearch", "newrelic"]


def test_datadog_agent_openmetrics_check():
    config = load_yaml("datadog/conf.d/openmetrics.d/conf.yaml")
    assert "init_config" in config
    (instance,) = config["instances"]
    assert urlsplit(instance["openmetrics_endpoint"]).path == EXPOSITION
    assert instance["namespace"]
    for pattern in instance["metrics"]:
        re.compile(pattern)
    auth = instance["auth_token"]
    assert auth["reader"]["type"] == "file" and auth["reader"]["path"].startswith("/")
    assert auth["writer"] == {"type": "header", "name": "Authorization", "value": "Bearer <TOKEN>"}


def test_new_relic_prometheus_integration():
    config = load_yaml("newrelic/nri-prometheus-config.yml")
    assert config["cluster_name"] and config["emitters"] == ["telemetry"]
    assert "license_key" not in config  # from LICENSE_KEY in the environment
    urls = [u for target in config["targets"] for u in target["urls"]]
    assert urls and all(urlsplit(u).path == EXPOSITION for u in urls)
    assert config["bearer_token_file"].startswith("/")


def test_cloudwatch_agent_prometheus_support():
    agent = json.loads((ROOT / "cloudwatch/amazon-cloudwatch-agent.json").read_text())
    prometheus = agent["logs"]["metrics_collected"]["prometheus"]
    assert Path(prometheus["prometheus_config_path"]).name == "prometheus.yaml"
    emf = prometheus["emf_processor"]
    for declaration in emf["metric_declaration"]:
        re.compile(declaration["label_matcher"])
        for selector in declaration["metric_selectors"]:
            re.compile(selector)
    scrape = load_yaml("cloudwatch/prometheus.yaml")
    (job,) = scrape["scrape_configs"]
    assert job["metrics_path"] == EXPOSITION
    assert job["authorization"]["type"] == "Bearer"
    assert job["authorization"]["credentials_file"].startswith("/")
    # The EMF declaration selects this job's samples.
    assert re.fullmatch(emf["metric_declaration"][0]["label_matcher"], job["job_name"])


def test_metricbeat_prometheus_module():
    config = load_yaml("elasticsearch/metricbeat.yml")
    (module,) = config["metricbeat.modules"]
    assert module["module"] == "prometheus" and module["metricsets"] == ["collector"]
    assert module["metrics_path"] == EXPOSITION
    assert module["bearer_token_file"].startswith("/")
    assert module["hosts"]
    output = config["output.elasticsearch"]
    assert output["api_key"].startswith("${")  # a reference, never a literal key


def test_push_credentials_grant_only_what_the_export_needs():
    policy = json.loads((ROOT / "cloudwatch/botmon-push-policy.json").read_text())
    actions = {a for st in policy["Statement"] for a in
               (st["Action"] if isinstance(st["Action"], list) else [st["Action"]])}
    assert actions == {"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents",
                       "cloudwatch:PutMetricData"}
    key = json.loads((ROOT / "elasticsearch/botmon-api-key.json").read_text())
    (role,) = key["role_descriptors"].values()
    (indices,) = role["indices"]
    assert sorted(indices["names"]) == ["logs-botmon-*", "metrics-botmon-*"]
    assert "create_doc" in indices["privileges"] and "manage_index_templates" in role["cluster"]


@pytest.mark.skipif(not shutil.which("promtool"),
                    reason="promtool is not installed (Debian package 'prometheus')")
def test_cloudwatch_scrape_config_passes_promtool(tmp_path):
    # promtool checks that the token file exists: point it at one made here.
    token = tmp_path / "botmon-token"
    token.write_text("a-viewer-token-of-16-chars-or-more\n")
    scrape = load_yaml("cloudwatch/prometheus.yaml")
    scrape["scrape_configs"][0]["authorization"]["credentials_file"] = str(token)
    config = tmp_path / "prometheus.yaml"
    config.write_text(yaml.safe_dump(scrape))
    checked = subprocess.run(["promtool", "check", "config", str(config)],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
