"""Webhook: Alertmanager's webhook payload, version 4, optionally signed with HMAC-SHA256."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from services.alerts.notifiers.text import Context, status_of, value_text
from services.alerts.rfc3339 import rfc3339

__all__ = ["SIGNATURE_HEADER", "build", "encode", "signature"]

SIGNATURE_HEADER = "X-Botmon-Signature"


def build(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """The v4 body: one group per alert, grouped by ``alertname`` as Alertmanager does by default."""
    status = status_of(payload)
    labels = dict(payload["labels"])
    annotations = {"summary": payload["message"], "alert_id": payload["alert_id"],
                   "value": value_text(payload), "threshold": f"{payload['threshold']:g}",
                   "metric": payload["metric"]}
    if payload.get("description"):
        annotations["description"] = payload["message"]
    if payload.get("acknowledged_at"):
        annotations["acknowledged_by"] = payload["acknowledged_by"]
        annotations["acknowledged_at"] = rfc3339(payload["acknowledged_at"])
    group_labels = {"alertname": payload["rule"]}
    return {
        "version": "4",
        "groupKey": "{}:" + "{" + f'alertname="{payload["rule"]}"' + "}",
        "truncatedAlerts": 0,
        "status": status,
        "receiver": payload["rule"],
        "groupLabels": group_labels,
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": ctx.external_url,
        "alerts": [{
            "status": status,
            "labels": labels,
            "annotations": annotations,
            "startsAt": rfc3339(payload.get("fired_at") or payload["triggered_at"]),
            "endsAt": rfc3339(payload["resolved_at"] if status == "resolved" else None),
            "generatorURL": ctx.history_url(payload["alert_id"]),
            "fingerprint": payload["fingerprint"],
        }],
    }


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def signature(secret: str, raw: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of the raw body>``."""
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
