"""Keep an application listed in botmon's ``/status``, with its process start time.

    heartbeat = Heartbeat("health.internal:50051", name="web_server", port=8080,
                          token=OPERATOR_TOKEN)
    ...
    heartbeat.close()         # deregisters, within a deadline

A background thread calls ``HealthService/Heartbeat`` every ``interval`` seconds
(each call with a deadline); until the first one lands it retries after 0.2 s,
doubling up to ``interval``, so the application is listed as soon as botmon's
health service is reachable. Every heartbeat carries the process's start time,
from which botmon counts the platform's ``uptime_seconds``. Failures are logged
at debug level and never raised.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid

import grpc
import psutil
from google.protobuf import timestamp_pb2

from botmon.client.connection import Connection
from botmon.health.v1 import health_service_pb2, health_service_pb2_grpc

__all__ = ["Heartbeat"]

log = logging.getLogger("botmon.client.heartbeat")

#: The first retry of a first heartbeat that failed; it doubles up to the interval.
FIRST_RETRY = 0.2


class Heartbeat:
    """Registers this process with botmon's health service until closed."""

    def __init__(self, target: str | None = None, *, channel: grpc.Channel | None = None,
                 name: str, port: int = 0, version: str = "", instance_id: str | None = None,
                 interval: float = 10.0, ttl_seconds: int = 30, details: dict | None = None,
                 timeout: float = 5.0, token: str | None = None,
                 credentials: grpc.ChannelCredentials | None = None):
        self._connection = Connection.open(target, channel, token, credentials)
        self._metadata = self._connection.metadata
        self._stub = health_service_pb2_grpc.HealthServiceStub(self._connection.channel)
        self.name = name
        self.instance_id = instance_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.interval = interval
        self.timeout = timeout
        start = timestamp_pb2.Timestamp()
        # The process's own start, not this object's: a restart of the process resets it.
        start.FromNanoseconds(int(psutil.Process().create_time() * 1e9))
        request = health_service_pb2.HeartbeatRequest(
            name=name, instance_id=self.instance_id, ttl_seconds=ttl_seconds, port=port,
            pid=os.getpid(), version=version, host=socket.gethostname(), start_time=start)
        if details:
            request.details.update(details)
        self._request = request
        #: Heartbeats that landed.
        self.sent = 0
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="botmon-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> bool:
        try:
            self._stub.Heartbeat(self._request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as exc:
            log.debug("heartbeat to botmon failed: %s", exc.code().name)
            return False
        self.sent += 1
        return True

    def _run(self) -> None:
        delay = FIRST_RETRY
        while not self._beat():
            if self._closing.wait(delay):
                return
            delay = min(delay * 2, self.interval)
        while not self._closing.wait(self.interval):
            self._beat()

    def close(self) -> None:
        """Stop the heartbeats and deregister, so the application leaves ``/status`` at once."""
        self._closing.set()
        self._thread.join(self.timeout)
        try:
            self._stub.Deregister(health_service_pb2.DeregisterRequest(
                name=self.name, instance_id=self.instance_id), timeout=self.timeout,
                metadata=self._metadata)
        except grpc.RpcError as exc:
            log.debug("deregistration failed: %s", exc.code().name)
        self._connection.close()

    def __enter__(self) -> Heartbeat:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
