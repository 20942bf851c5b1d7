"""docker-compose.yml is valid, runs every component hardened, and mounts files that exist."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess

import pytest
import yaml

from botmon.cli import COMPONENTS
from tests.cli.conftest import ROOT

COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / "deploy/compose.env.example"
#: What compose refuses to start without (every name of deploy/compose.env.example).
REQUIRED = ("POSTGRES_PASSWORD", "BOTMON_INTERNAL_TOKEN", "BOTMON_SECRET_KEY",
            "BOTMON_API_TOKENS", "BOTMON_PROMETHEUS_TOKEN", "GRAFANA_ADMIN_PASSWORD")


def _filled() -> dict[str, str]:
    values = {name: secrets.token_urlsafe(24) for name in REQUIRED}
    values["BOTMON_API_TOKENS"] = f"{secrets.token_urlsafe(24)}:admin:ops"
    return values


def _compose_config(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in REQUIRED}
    return subprocess.run(["docker-compose", "-f", str(COMPOSE), "config"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, env={**clean, **env})


def test_compose_mounts_only_files_of_the_repository():
    for path in re.findall(r"^\s+- (\./[^:\s]+):", COMPOSE.read_text(), re.M):
        assert (ROOT / path).exists(), f"docker-compose.yml mounts missing {path}"


@pytest.mark.skipif(not shutil.which("docker-compose"), reason="docker-compose not installed")
def test_compose_config_is_valid_and_runs_each_component():
    result = _compose_config(_filled())
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
    token = tmp_path / "botmon-token"
    token.write_text("a-viewer-token")
    assert "/prometheus/botmon-token" in config
    checked = tmp_path / "prometheus.yml"
    checked.write_text(config.replace("/prometheus/botmon-token", str(token)))
    result = subprocess.run(["promtool", "check", "config", str(checked)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(not shutil.which("docker-compose"), reason="docker-compose not installed")
@pytest.mark.parametrize("missing", REQUIRED)
def test_compose_refuses_to_start_without_each_secret(missing):
    env = _filled()
    env[missing] = ""
    result = _compose_config(env)
    assert result.returncode != 0
    assert missing in result.stderr


def test_the_env_example_lists_exactly_the_required_secrets():
    names = re.findall(r"^([A-Z_]+)=$", ENV_EXAMPLE.read_text(), re.M)
    assert sorted(names) == sorted(REQUIRED)


def test_every_container_runs_non_root_without_privileges():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    for name, service in services.items():
        user = str(service.get("user", ""))
        assert user and user.split(":")[0] not in ("0", "root"), f"{name} runs as root"
        assert "no-new-privileges:true" in service.get("security_opt", ()), name
        assert service.get("cap_drop") == ["ALL"], name
        assert service.get("read_only") is True, f"{name} has a writable root filesystem"
