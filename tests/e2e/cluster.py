"""The suite as real OS processes: ``botmon serve`` per replica, configured by environment only.

    cluster = Cluster(tmp_path, store_url=..., redis_url=...)
    cluster.start()                      # 2 replicas of each gRPC service + 2 gateways
    cluster.base(0)                      # http://127.0.0.1:<port>/api/v1/monitoring of gateway 0
    cluster.kill("logs", 0)              # SIGKILL by default
    cluster.restart("logs", 0)           # same port, waits until it serves
    cluster.stop()                       # SIGTERM, then SIGKILL after a bound

``env`` applies to every process, ``replica_env[(component, index)]`` to one of them.

Gateways dial each service through one multi-address target
(``ipv4:127.0.0.1:p1,127.0.0.1:p2``) balanced round-robin by gRPC itself.
Every process writes its output to ``<workdir>/logs/<name>.log``; :meth:`tails`
gives the end of each, for failure reports.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
from cryptography.fernet import Fernet

from botmon.runtime.channels import open_channel
from tests.conftest import free_port, grpc_serving
from tests.waiting import wait_until

__all__ = ["SERVICES", "Cluster", "free_port"]

SERVICES = ("health", "metrics", "alerts", "logs")
ROLES = ("viewer", "operator", "admin")
BASE_PATH = "/api/v1/monitoring"




def _command(component: str) -> list[str]:
    """``botmon serve <component>`` from the environment running the tests."""
    script = Path(sys.executable).with_name("botmon")
    if script.exists():
        return [str(script), "serve", component]
    return [sys.executable, "-m", "botmon.cli", "serve", component]


@dataclass
class Replica:
    """One OS process of the cluster."""

    component: str
    index: int
    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen | None = None

    @property
    def name(self) -> str:
        return f"{self.component}-{self.index}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def spawn(self) -> None:
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.name} at {time.strftime('%H:%M:%S')}\n".encode())
            log.flush()
            # A session of its own: signals reach this replica (and any child) only.
            self.process = subprocess.Popen(_command(self.component), env=self.env,
                                            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                            start_new_session=True)

    def signal(self, sig: int) -> None:
        if self.running:
            os.killpg(self.process.pid, sig)

    def reap(self, grace: float) -> None:
        """SIGTERM, then SIGKILL if still alive after ``grace`` seconds."""
        if self.process is None:
            return
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.process.wait(5)
        self.kill_group()

    def kill_group(self) -> None:
        """SIGKILL whatever is left of the replica's process group."""
        # A worker the component forked outlives a SIGKILLed parent; its group does not.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Cluster:
    """``replicas`` processes of each gRPC service plus ``gateways`` gateways, on free ports."""

    def __init__(self, workdir: Path, *, store_url: str, redis_url: str | None,
                 replicas: int = 2, gateways: int = 2, env: dict[str, str] | None = None,
                 replica_env: dict[tuple[str, int], dict[str, str]] | None = None,
                 extra_tokens: dict[str, str] | None = None):
        self.workdir = Path(workdir)
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        self.tokens = {role: f"e2e-{role}-{secrets.token_hex(12)}" for role in ROLES}
        # Extra tokens (subject -> role) with subjects of their own: separate per-user budgets.
        self.extra_tokens = {subject: f"e2e-{subject}-{secrets.token_hex(12)}"
                             for subject in (extra_tokens or {})}
        token_spec = [f"{t}:{role}:e2e-{role}" for role, t in self.tokens.items()]
        token_spec += [f"{t}:{(extra_tokens or {})[subject]}:{subject}"
                       for subject, t in self.extra_tokens.items()]
        self.ports = {(c, i): free_port() for c in SERVICES for i in range(replicas)}
        self.ports.update({("gateway", i): free_port() for i in range(gateways)})
        common = {
            "BOTMON_STORE_URL": store_url,
            "BOTMON_API_TOKENS": ",".join(token_spec),
            # Every replica has its own data dir: they share the internal credential here.
            "BOTMON_INTERNAL_TOKEN": INTERNAL_TOKEN,
            "BOTMON_ALERT_EVAL_INTERVAL": "0.5",
            "BOTMON_HEARTBEAT_INTERVAL": "1",
            "BOTMON_PROBE_INTERVAL": "1",
            "BOTMON_LOG_LEVEL": "info",
            # One key for every replica, as CONTRACT.md §11 asks: each seals what the others open.
            "BOTMON_SECRET_KEY": Fernet.generate_key().decode(),
            "PYTHONUNBUFFERED": "1",
            **{f"BOTMON_{c.upper()}_TARGET": self.target(c, replicas) for c in SERVICES},
            **(env or {}),
        }
        if redis_url:
            common["BOTMON_REDIS_URL"] = redis_url
        # Start from a clean slate: no BOTMON_* of the developer's shell leaks in.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("BOTMON_")}
        self.replicas: dict[tuple[str, int], Replica] = {}
        for (component, index), port in self.ports.items():
            address = f"127.0.0.1:{port}"
            data_dir = self.workdir / f"{component}-{index}"
            data_dir.mkdir(exist_ok=True)
            own = {"BOTMON_DATA_DIR": str(data_dir)}
            if component == "gateway":
                own["BOTMON_HTTP_ADDR"] = address
            else:
                own[f"BOTMON_{component.upper()}_ADDR"] = address
            own.update((replica_env or {}).get((component, index), {}))
            self.replicas[(component, index)] = Replica(
                component, index, port, {**inherited, **common, **own},
                self.workdir / "logs" / f"{component}-{index}.log")

    # ------------------------------------------------------------------ addresses

    def target(self, component: str, replicas: int | None = None) -> str:
        """The multi-address gRPC target of ``component``'s replicas."""
        count = replicas if replicas is not None else self.count(component)
        return "ipv4:" + ",".join(f"127.0.0.1:{self.ports[(component, i)]}"
                                  for i in range(count))

    def count(self, component: str) -> int:
        return sum(1 for c, _ in self.ports if c == component)

    def address(self, component: str, index: int) -> str:
        return f"127.0.0.1:{self.ports[(component, index)]}"

    def url(self, gateway: int = 0) -> str:
        return f"http://127.0.0.1:{self.ports[('gateway', gateway)]}"

    def base(self, gateway: int = 0) -> str:
        return self.url(gateway) + BASE_PATH

    def ws(self, gateway: int = 0) -> str:
        return f"ws://127.0.0.1:{self.ports[('gateway', gateway)]}{BASE_PATH}"

    def headers(self, role: str = "viewer") -> dict[str, str]:
        token = self.tokens.get(role) or self.extra_tokens[role]
        return {"Authorization": f"Bearer {token}"}

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 60.0) -> None:
        """Start every process and wait until every gateway reports ready."""
        for replica in self.replicas.values():
            replica.spawn()
        try:
            for component, index in self.replicas:
                self.wait_serving(component, index, timeout)
        except TimeoutError as exc:
            self.stop()
            raise TimeoutError(f"{exc}\n{self.tails()}") from None
        except BaseException:
            self.stop()
            raise

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM everything at once, then SIGKILL what outlives ``grace``."""
        for replica in self.replicas.values():
            replica.signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for replica in self.replicas.values():
            replica.reap(max(0.1, deadline - time.monotonic()))

    def kill(self, component: str, index: int, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to one replica and wait until it is gone."""
        replica = self.replicas[(component, index)]
        replica.signal(sig)
        replica.process.wait(10)
        replica.kill_group()

    def restart(self, component: str, index: int, timeout: float = 30.0) -> None:
        """Start a stopped replica again on its port; return once it serves."""
        replica = self.replicas[(component, index)]
        if replica.running:
            self.kill(component, index, signal.SIGTERM)
        replica.spawn()
        self.wait_serving(component, index, timeout)

    def wait_serving(self, component: str, index: int, timeout: float) -> None:
        replica = self.replicas[(component, index)]

        def serving() -> bool:
            if not replica.running:
                raise AssertionError(f"{replica.name} exited with {replica.process.returncode}; "
                                     f"log:\n{self.tail(replica)}")
            if component == "gateway":
                return httpx.get(f"{self.base(index)}/health/ready", timeout=2).status_code == 200
            return grpc_serving(self.address(component, index))

        wait_until(serving, f"{replica.name} serving", timeout, interval=0.2)

    # ------------------------------------------------------------------ diagnostics

    def tail(self, replica: Replica, lines: int = 15, width: int = 400) -> str:
        try:
            text = replica.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        # Long lines are mostly tracebacks: their head says enough in a failure report.
        return "\n".join(line[:width] for line in text.splitlines()[-lines:])

    def log_text(self, component: str, index: int) -> str:
        return self.replicas[(component, index)].log_path.read_text(errors="replace")

    def tails(self, lines: int = 15) -> str:
        """The last ``lines`` of every process's output."""
        return "\n\n".join(f"===== {r.name} (port {r.port}, "
                           f"{'running' if r.running else 'stopped'}) =====\n{self.tail(r, lines)}"
                           for r in self.replicas.values())


#: The internal credential every process of a cluster shares.
INTERNAL_TOKEN = f"e2e-internal-{secrets.token_hex(16)}"


def internal_channel(address: str) -> grpc.aio.Channel:
    """A channel to one replica carrying the cluster's internal credential."""
    return open_channel(address, token=INTERNAL_TOKEN)
