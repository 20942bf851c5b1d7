"""The index templates botmon installs for its two Elasticsearch data streams (ECS fields)."""

from __future__ import annotations

from typing import Any

__all__ = ["ECS_VERSION", "LOGS_STREAM", "METRICS_STREAM", "TEMPLATES"]

ECS_VERSION = "8.11.0"
LOGS_STREAM = "logs-botmon-default"
METRICS_STREAM = "metrics-botmon-default"

_KEYWORD = {"type": "keyword", "ignore_above": 1024}

# labels.* are strings (metadata values that are not strings arrive JSON-encoded),
# mapped as keywords like ECS's own labels field.
_LABELS = [{"labels": {"path_match": "labels.*", "match_mapping_type": "*",
                       "mapping": _KEYWORD}}]

_COMMON: dict[str, Any] = {
    "@timestamp": {"type": "date_nanos"},
    "data_stream": {"properties": {"type": {"type": "constant_keyword"},
                                   "dataset": {"type": "constant_keyword"},
                                   "namespace": {"type": "constant_keyword"}}},
    "ecs": {"properties": {"version": _KEYWORD}},
    "service": {"properties": {"name": _KEYWORD}},
    "labels": {"type": "object"},
}


def _template(stream: str, properties: dict[str, Any]) -> dict[str, Any]:
    kind = stream.split("-", 1)[0]
    return {
        # Above the built-in logs-*-* / metrics-*-* templates (priority 100).
        "index_patterns": [f"{kind}-botmon-*"],
        "data_stream": {},
        "priority": 200,
        "version": 1,
        "_meta": {"managed_by": "botmon", "description": f"botmon {kind} (ECS {ECS_VERSION})"},
        "template": {
            # The built-in ILM policy of its kind (rollover, then the cluster's retention),
            # as the built-in logs-*-* and metrics-*-* templates use.
            "settings": {"index.lifecycle.name": kind},
            "mappings": {"dynamic_templates": _LABELS,
                         "properties": {**_COMMON, **properties}}},
    }


#: Template name -> body of PUT _index_template/<name>.
TEMPLATES: dict[str, dict[str, Any]] = {
    "botmon-logs": _template(LOGS_STREAM, {
        "message": {"type": "match_only_text"},
        "log": {"properties": {"level": _KEYWORD}},
        "event": {"properties": {"sequence": {"type": "long"}}},
    }),
    "botmon-metrics": _template(METRICS_STREAM, {
        "metric": {"properties": {
            "name": _KEYWORD, "type": _KEYWORD, "unit": _KEYWORD,
            "value": {"type": "double"},
            "count": {"type": "long"},
            "sum": {"type": "double"},
            "histogram": {"type": "histogram"},
            "start": {"type": "date_nanos"},
        }},
    }),
}
