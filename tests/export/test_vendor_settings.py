"""Bad Datadog, CloudWatch and Elasticsearch settings stop `botmon serve export` with one line."""

from __future__ import annotations

import pytest

from tests.export.test_settings import _start

BAD = [
    ({"BOTMON_DATADOG_API_KEY": "k", "BOTMON_DATADOG_SITE": "https://datadoghq.eu"},
     "BOTMON_DATADOG_SITE"),
    ({"BOTMON_DATADOG_URL": "http://127.0.0.1:9"}, "BOTMON_DATADOG_API_KEY"),
    ({"BOTMON_CLOUDWATCH_REGION": "eu west 1"}, "BOTMON_CLOUDWATCH_REGION"),
    ({"BOTMON_CLOUDWATCH_REGION": "eu-west-1", "BOTMON_CLOUDWATCH_ENDPOINT_URL": "localhost:4566"},
     "BOTMON_CLOUDWATCH_ENDPOINT_URL"),
    ({"BOTMON_ELASTICSEARCH_URL": "es:9200"}, "BOTMON_ELASTICSEARCH_URL"),
    ({"BOTMON_ELASTICSEARCH_URL": "https://elastic:secret@es:9200"}, "BOTMON_ELASTICSEARCH_URL"),
    ({"BOTMON_ELASTICSEARCH_URL": "elastic:secret@es:9200"}, "BOTMON_ELASTICSEARCH_URL"),
    ({"BOTMON_ELASTICSEARCH_URL": "https://es:9200", "BOTMON_ELASTICSEARCH_USERNAME": "elastic"},
     "BOTMON_ELASTICSEARCH_PASSWORD"),
]


@pytest.mark.parametrize(("extra", "variable"), BAD, ids=[v for _, v in BAD])
def test_bad_setting_fails_at_start_naming_the_variable(tmp_path, extra, variable):
    _start(tmp_path, ("serve", "export"), extra, variable)
