"""How the SDK reaches the suite: a channel (TLS when given credentials) and a bearer token."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

__all__ = ["Connection", "bearer_metadata", "sdk_channel"]


def sdk_channel(target: str, credentials: grpc.ChannelCredentials | None = None) -> grpc.Channel:
    """A channel to ``target``: TLS with ``credentials`` (e.g. ``grpc.ssl_channel_credentials``)."""
    if credentials is None:
        return grpc.insecure_channel(target)
    return grpc.secure_channel(target, credentials)


def bearer_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """The ``authorization`` metadata every call carries (an operator token or JWT)."""
    return (("authorization", f"Bearer {token}"),) if token else ()


@dataclass(frozen=True)
class Connection:
    """The channel an SDK object calls on, whether it opened the channel, and the metadata
    every call carries."""

    channel: grpc.Channel
    owned: bool
    metadata: tuple[tuple[str, str], ...]

    @classmethod
    def open(cls, target: str | None, channel: grpc.Channel | None, token: str | None,
             credentials: grpc.ChannelCredentials | None) -> Connection:
        """A channel given by the caller, or one opened to ``target`` (never both)."""
        if channel is not None:
            if target is not None:
                raise ValueError("give either target (host:port) or channel, not both")
            return cls(channel, False, bearer_metadata(token))
        if target is None:
            raise ValueError("give either target (host:port) or channel")
        return cls(sdk_channel(target, credentials), True, bearer_metadata(token))

    def close(self) -> None:
        """Close the channel if this connection opened it; a caller's channel stays open."""
        if self.owned:
            self.channel.close()
