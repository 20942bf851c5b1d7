"""The Grafana dashboard, generated from the catalogue's rows of panels.

``python -m services.metrics.dashboard`` rewrites ``deploy/grafana/dashboards/botmon.json``
(the file Grafana's provisioning loads); a test fails when that file is stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from google.protobuf import struct_pb2

from services.metrics.catalogue import ROWS, Panel

__all__ = ["DASHBOARD_FILE", "UID", "as_struct", "build"]

UID = "botmon-overview"
DASHBOARD_FILE = Path(__file__).resolve().parents[2] / "deploy/grafana/dashboards/botmon.json"
_DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
_COLUMNS = 24
_PANEL_WIDTH = 8
_PANEL_HEIGHT = 8


def _panel(panel: Panel, panel_id: int, x: int, y: int) -> dict:
    targets = [{"refId": chr(ord("A") + i), "expr": t.expr, "legendFormat": t.legend,
                "datasource": _DATASOURCE, "range": True}
               for i, t in enumerate(panel.targets)]
    options: dict = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                     "tooltip": {"mode": "multi", "sort": "none"}}
    if panel.kind == "stat":
        options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                   "colorMode": "value", "graphMode": "area", "textMode": "auto",
                   "orientation": "auto", "justifyMode": "auto"}
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": _DATASOURCE,
        # The API document's shape: the first query, for clients that read "query".
        "query": panel.targets[0].expr,
        "targets": targets,
        "gridPos": {"h": _PANEL_HEIGHT, "w": _PANEL_WIDTH, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": options,
    }


def build() -> dict:
    """The dashboard JSON model, importable into Grafana as is."""
    panels: list[dict] = []
    panel_id, y = 1, 0
    for row in ROWS:
        panels.append({"id": panel_id, "type": "row", "title": row.title, "collapsed": False,
                       "gridPos": {"h": 1, "w": _COLUMNS, "x": 0, "y": y}, "panels": []})
        panel_id, y, x = panel_id + 1, y + 1, 0
        for panel in row.panels:
            if x + _PANEL_WIDTH > _COLUMNS:
                x, y = 0, y + _PANEL_HEIGHT
            panels.append(_panel(panel, panel_id, x, y))
            panel_id, x = panel_id + 1, x + _PANEL_WIDTH
        y += _PANEL_HEIGHT
    return {
        "uid": UID,
        "title": "BotServer Monitoring",
        "description": "The platform as reported to botmon, its host, components and alerts.",
        "tags": ["botmon", "botserver"],
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "links": [],
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts", "type": "dashboard"}]},
        "templating": {"list": [{
            "name": "datasource", "label": "Prometheus", "type": "datasource",
            "query": "prometheus", "current": {}, "hide": 0, "refresh": 1, "regex": "",
            "includeAll": False, "multi": False, "options": [], "skipUrlSync": False}]},
        "panels": panels,
    }


def as_struct() -> struct_pb2.Struct:
    dashboard = struct_pb2.Struct()
    dashboard.update(build())
    return dashboard


def render() -> str:
    """The provisioned file's exact text."""
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    DASHBOARD_FILE.parent.mkdir(parents=True, exist_ok=True)
    DASHBOARD_FILE.write_text(render())
    print(f"wrote {DASHBOARD_FILE}", file=sys.stderr)
