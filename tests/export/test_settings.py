"""Bad export settings stop the process at start with one line naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]

BAD = [
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317",
      "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317",
      "OTEL_EXPORTER_OTLP_HEADERS": "api-key=abc,no-equals-sign-secret"},
     "OTEL_EXPORTER_OTLP_HEADERS"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
    ({"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "127.0.0.1:4318/v1/logs"},
     "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"),
    ({"BOTMON_NEWRELIC_LICENSE_KEY": "k", "BOTMON_NEWRELIC_REGION": "mars"},
     "BOTMON_NEWRELIC_REGION"),
    ({"BOTMON_NEWRELIC_LICENSE_KEY": "k", "BOTMON_NEWRELIC_ENDPOINT": "otlp.nr-data.net"},
     "BOTMON_NEWRELIC_ENDPOINT"),
    ({"BOTMON_EXPORT_MAX_AGE": "a day"}, "BOTMON_EXPORT_MAX_AGE"),
    ({"BOTMON_EXPORT_INTERVAL": "0"}, "BOTMON_EXPORT_INTERVAL"),
]


def _start(tmp_path, command: tuple[str, ...], extra: dict[str, str], variable: str) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BOTMON_", "OTEL_"))}
    env.update({"BOTMON_DATA_DIR": str(tmp_path), "BOTMON_EXPORT_ADDR": f"127.0.0.1:{free_port()}",
                **extra})
    result = subprocess.run([sys.executable, "-m", "botmon.cli", *command], cwd=ROOT, env=env,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"botmon: {variable}: "), result.stderr
    assert "secret" not in lines[0]


@pytest.mark.parametrize(("extra", "variable"), BAD, ids=[v for _, v in BAD])
def test_bad_setting_fails_at_start_naming_the_variable(tmp_path, extra, variable):
    _start(tmp_path, ("serve", "export"), extra, variable)


def test_botmon_up_checks_the_destinations_before_starting_anything(tmp_path):
    extra, variable = BAD[0]
    _start(tmp_path, ("up",), extra, variable)
