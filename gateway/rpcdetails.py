"""A backend's ``google.rpc.Status`` details as the REST error's ``details``, as grpc-gateway does.

A servicer that explains an error entry by entry (e.g. ``google.rpc.BadRequest``
from the logs service) sends a serialized ``google.rpc.Status`` in the
``grpc-status-details-bin`` trailer; each of its ``Any`` details becomes one JSON
object with its ``@type`` (importing ``error_details_pb2`` puts every standard
detail type where ``json_format`` finds it). Field names are the proto names, as
everywhere else in this API.
"""

from __future__ import annotations

import base64
from typing import Any

import grpc
from google.protobuf import any_pb2, json_format
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

__all__ = ["DETAILS_KEY", "bad_request", "rpc_details"]

#: The trailing metadata key that carries the serialized ``google.rpc.Status``.
DETAILS_KEY = "grpc-status-details-bin"


def rpc_details(exc: grpc.aio.AioRpcError) -> list[dict[str, Any]]:
    """The details of a failed call's rich status; [] when there are none or they don't parse."""
    raw = next((value for key, value in exc.trailing_metadata() or ()
                if key == DETAILS_KEY), None)
    if not isinstance(raw, bytes):
        return []
    status = status_pb2.Status()
    try:
        status.ParseFromString(raw)
    except DecodeError:
        return []
    return [_detail(detail) for detail in status.details]


def bad_request(field: str, description: str) -> dict[str, Any]:
    """One ``google.rpc.BadRequest`` detail naming the field that is wrong."""
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.BadRequest(field_violations=[
        error_details_pb2.BadRequest.FieldViolation(field=field, description=description)]))
    return _detail(detail)


def _detail(detail: any_pb2.Any) -> dict[str, Any]:
    try:
        return json_format.MessageToDict(detail, preserving_proto_field_name=True)
    except (TypeError, KeyError):
        # A type this process does not know: keep its bytes, as protojson does for Any.
        return {"@type": detail.type_url, "value": base64.b64encode(detail.value).decode()}
