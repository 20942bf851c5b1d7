"""Domain errors raised by service logic and mapped to gRPC status in one place."""

from __future__ import annotations

import asyncpg
import grpc
import redis.exceptions

__all__ = [
    "AlreadyExists",
    "BotmonError",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "UNREACHABLE",
    "Unavailable",
]


class BotmonError(Exception):
    """An error with a gRPC status code and a message that says what to fix."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, *, field: str | None = None,
                 violations: tuple[tuple[str, str], ...] = ()):
        super().__init__(message)
        self.message = message
        self.field = field
        #: (field, what to fix) pairs; they travel as ``google.rpc.BadRequest`` details.
        self.violations = violations or (((field, message),) if field else ())


class InvalidArgument(BotmonError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(BotmonError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(BotmonError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(BotmonError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class PermissionDenied(BotmonError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(BotmonError):
    code = grpc.StatusCode.UNAUTHENTICATED


class ResourceExhausted(BotmonError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(BotmonError):
    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(BotmonError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


#: Exceptions meaning a dependency (the store, Redis) cannot be reached right now. The
#: interceptor answers them with UNAVAILABLE, so callers retry instead of reporting a bug.
UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,  # connection refused or reset, timeouts, name resolution
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)
