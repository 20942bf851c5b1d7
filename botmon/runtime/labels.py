"""Label values of exported series, from bounded sets: no client can mint new series.

An HTTP method outside :data:`HTTP_METHODS` counts as ``OTHER``; a status code
that is not registered with IANA (Python's ``http.HTTPStatus``) counts as its
class, ``2xx`` … ``5xx``. So ``botserver_requests_total`` and
``botmon_gateway_requests_total`` have at most
``len(HTTP_METHODS) + 1`` methods times :data:`MAX_STATUS_VALUES` statuses per route.
"""

from __future__ import annotations

from http import HTTPStatus

__all__ = ["HTTP_METHODS", "MAX_METHOD_VALUES", "MAX_STATUS_VALUES", "OTHER", "method_label",
           "status_label"]

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS",
                          "TRACE", "PATCH"})
OTHER = "OTHER"
_REGISTERED = frozenset(int(status) for status in HTTPStatus)
MAX_METHOD_VALUES = len(HTTP_METHODS) + 1
MAX_STATUS_VALUES = len(_REGISTERED) + 5  # registered codes, then 1xx … 5xx


def method_label(method: str) -> str:
    """``method`` upper-cased if it is an HTTP method, else ``OTHER``."""
    upper = method.upper()
    return upper if upper in HTTP_METHODS else OTHER


def status_label(status: int) -> str:
    """The code itself if IANA registered it, else its class (``599`` -> ``5xx``)."""
    return str(status) if status in _REGISTERED else f"{status // 100}xx"
