"""The suite as real processes for a benchmark, configured by environment only.

    cluster = Cluster(procs, workdir, replicas={"health": 1, "metrics": 2}, gateways=2)
    cluster.start()
    cluster.wait_ready(gateway_path="/metrics")
    cluster.base(0), cluster.ws_url(1), cluster.headers("operator"), cluster.pids("metrics")

Each gRPC replica runs ``python -m services.<svc>``, each gateway ``python -m gateway``,
on free ports. Gateways dial a component with several replicas through one
multi-address target (``ipv4:127.0.0.1:p1,127.0.0.1:p2``, balanced round-robin by
gRPC); a component not started is dialled on a port where nothing listens.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import grpc
from cryptography.fernet import Fernet
from grpc_health.v1 import health_pb2, health_pb2_grpc

from benchmarks.processes import Processes, free_port, wait_http

__all__ = ["API", "COMPONENTS", "Cluster"]

COMPONENTS = ("health", "metrics", "alerts", "logs")
ROLES = ("viewer", "operator", "admin")
API = "/api/v1/monitoring"


class Cluster:
    """``replicas[c]`` processes of each gRPC component ``c`` and ``gateways`` gateways."""

    def __init__(self, procs: Processes, workdir: Path, *, replicas: Mapping[str, int],
                 gateways: int = 1, env: Mapping[str, str] | None = None):
        self.procs = procs
        self.workdir = workdir
        self.replicas = {c: replicas.get(c, 0) for c in COMPONENTS}
        self.tokens = {role: f"bench-{role}-{secrets.token_hex(12)}" for role in ROLES}
        self.ports = {(c, i): free_port() for c, n in self.replicas.items() for i in range(n)}
        self.ports.update({("gateway", i): free_port() for i in range(gateways)})
        self.processes: dict[tuple[str, int], subprocess.Popen] = {}
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("BOTMON_")}
        self.env = {
            **inherited,
            "BOTMON_API_TOKENS": ",".join(f"{t}:{role}:bench-{role}"
                                          for role, t in self.tokens.items()),
            "BOTMON_INTERNAL_TOKEN": secrets.token_urlsafe(32),
            # Per-request info logs would measure the log files, not the suite.
            "BOTMON_LOG_LEVEL": "warning",
            # One key for every replica (CONTRACT.md §11): each opens what the others sealed.
            "BOTMON_SECRET_KEY": Fernet.generate_key().decode(),
            "PYTHONUNBUFFERED": "1",
            **{f"BOTMON_{c.upper()}_TARGET": self.target(c) for c in COMPONENTS},
            **(env or {}),
        }

    def target(self, component: str) -> str:
        """What clients dial: the replicas' addresses, or a closed port when none runs."""
        count = self.replicas[component]
        if count == 0:
            return f"127.0.0.1:{free_port()}"
        if count == 1:
            return self.address(component, 0)
        return "ipv4:" + ",".join(self.address(component, i) for i in range(count))

    def address(self, component: str, index: int) -> str:
        return f"127.0.0.1:{self.ports[(component, index)]}"

    def base(self, gateway: int = 0) -> str:
        return f"http://{self.address('gateway', gateway)}{API}"

    def ws_url(self, gateway: int = 0, path: str = "/ws/metrics") -> str:
        return f"ws://{self.address('gateway', gateway)}{path}"

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def pids(self, component: str) -> list[int]:
        return [p.pid for (c, _), p in self.processes.items() if c == component]

    @staticmethod
    def name(component: str, index: int) -> str:
        return f"{component}-{index}"

    def start(self) -> None:
        """Spawn every process (the caller's ``Processes`` stops them)."""
        for (component, index), port in self.ports.items():
            data_dir = self.workdir / self.name(component, index)
            data_dir.mkdir(parents=True, exist_ok=True)
            own = {"BOTMON_DATA_DIR": str(data_dir)}
            if component == "gateway":
                own["BOTMON_HTTP_ADDR"] = f"127.0.0.1:{port}"
                module = "gateway"
            else:
                own[f"BOTMON_{component.upper()}_ADDR"] = f"127.0.0.1:{port}"
                module = f"services.{component}"
            self.processes[(component, index)] = self.procs.start(
                self.name(component, index), [sys.executable, "-m", module], {**self.env, **own})

    def wait_ready(self, gateway_path: str = "/health/ready", timeout: float = 60.0) -> None:
        """Wait until every replica serves gRPC health and every gateway answers 200 on
        ``gateway_path`` (readiness by default: it reaches every backend)."""
        deadline = time.monotonic() + timeout
        for (component, index), proc in self.processes.items():
            if component != "gateway":
                self._wait_grpc(component, index, proc, deadline)
        for (component, index), proc in self.processes.items():
            if component == "gateway":
                wait_http(self.base(index) + gateway_path, self.procs,
                          self.name(component, index), proc, self.tokens["viewer"],
                          max(1.0, deadline - time.monotonic()))

    def _wait_grpc(self, component: str, index: int, proc, deadline: float) -> None:
        name = self.name(component, index)
        request = health_pb2.HealthCheckRequest()
        with grpc.insecure_channel(self.address(component, index)) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited ({proc.returncode}):\n"
                                       f"{self.procs.tail(name)}")
                try:
                    if stub.Check(request, timeout=1).status == \
                            health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.2)
        raise RuntimeError(f"{name} did not serve gRPC health in time:\n{self.procs.tail(name)}")
