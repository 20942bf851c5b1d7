"""How the SDK reaches the suite: a channel (TLS when given credentials) and a bearer token."""

from __future__ import annotations

import grpc

__all__ = ["bearer_metadata", "sdk_channel"]


def sdk_channel(target: str, credentials: grpc.ChannelCredentials | None = None) -> grpc.Channel:
    """A channel to ``target``: TLS with ``credentials`` (e.g. ``grpc.ssl_channel_credentials``)."""
    if credentials is None:
        return grpc.insecure_channel(target)
    return grpc.secure_channel(target, credentials)


def bearer_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """The ``authorization`` metadata every call carries (an operator token or JWT)."""
    return (("authorization", f"Bearer {token}"),) if token else ()
