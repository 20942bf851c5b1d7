"""docker-compose.yml is valid, runs every component, and mounts files that exist."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from botmon.cli import COMPONENTS
from tests.cli.conftest import ROOT

COMPOSE = ROOT / "docker-compose.yml"


def test_compose_mounts_only_files_of_the_repository():
    for path in re.findall(r"^\s+- (\./[^:\s]+):", COMPOSE.read_text(), re.M):
        assert (ROOT / path).exists(), f"docker-compose.yml mounts missing {path}"


@pytest.mark.skipif(not shutil.which("docker-compose"), reason="docker-compose not installed")
def test_compose_config_is_valid_and_runs_each_component():
    result = subprocess.run(["docker-compose", "-f", str(COMPOSE), "config"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    config = result.stdout
    for name in COMPONENTS:
        assert re.search(rf"^  {name}:\n(?:    .*\n)*?    command:\n    - serve\n    - {name}$",
                         config, re.M), f"no `serve {name}` service"
    assert config.count("- healthcheck") == len(COMPONENTS)
    assert config.count("condition: service_healthy") >= 2 * len(COMPONENTS)


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool not installed")
def test_compose_prometheus_config_is_valid(tmp_path):
    """The scrape config Prometheus gets in docker-compose passes `promtool check config`."""
    config = (ROOT / "deploy/prometheus/prometheus.yml").read_text()
    token = tmp_path / "admin-token"
    token.write_text("a-viewer-token\n")
    assert "/etc/prometheus/secrets/admin-token" in config
    checked = tmp_path / "prometheus.yml"
    checked.write_text(config.replace("/etc/prometheus/secrets/admin-token", str(token)))
    result = subprocess.run(["promtool", "check", "config", str(checked)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
