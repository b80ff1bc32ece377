"""``deploy/k8s``: every manifest valid against the Kubernetes schemas (strict: no unknown
field), the kustomizations complete, the probes, drain and security settings the gateway needs,
and every setting they pass one the gateway has."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway.settings import Settings
from tests.deploy.promql import DEPLOY

K8S = DEPLOY / "k8s"
VERSIONS = ["1.28.0", kubernetes_validate.latest_version()]
"""The oldest release still commonly run, and the newest the validator knows."""
SHIPPED_SHUTDOWN = 25


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _resources() -> dict[str, dict[str, Any]]:
    """Every manifest but the kustomizations, by kind."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.rglob("*.yaml")):
        for doc in _documents(path):
            if doc["kind"] != "Kustomization":
                assert doc["kind"] not in found, doc["kind"]
                found[doc["kind"]] = doc
    return found


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_is_valid_against_the_kubernetes_schemas(version: str) -> None:
    resources = _resources()
    assert set(resources) >= {
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "ServiceMonitor",
    }
    for kind, doc in resources.items():
        if kind == "ServiceMonitor":
            continue  # a CRD the validator has no schema for: checked below instead
        kubernetes_validate.validate(doc, version, strict=True)
    # The validator does refuse what Kubernetes would.
    broken = copy.deepcopy(resources["Deployment"])
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["pth"] = "/"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, version, strict=True)


def test_the_kustomizations_list_every_manifest() -> None:
    listed: set[Path] = set()
    for kustomization in K8S.rglob("kustomization.yaml"):
        for resource in yaml.safe_load(kustomization.read_text())["resources"]:
            path = (kustomization.parent / resource).resolve()
            assert path.exists(), (kustomization, resource)
            listed.add(path)
    manifests = {p.resolve() for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml"}
    assert manifests <= listed


def test_the_service_monitor_scrapes_the_service() -> None:
    """Checked by hand: the Prometheus operator's CRD schema is not in the validator (and not
    vendored here)."""
    resources = _resources()
    monitor, service = resources["ServiceMonitor"], resources["Service"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(monitor["spec"]) == {"selector", "endpoints"}
    labels = monitor["spec"]["selector"]["matchLabels"].items()
    assert labels <= service["metadata"]["labels"].items()
    ports = {port["name"] for port in service["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout"}
        assert endpoint["port"] in ports
        assert endpoint["path"] == "/metrics"


def test_the_pod_drains_runs_unprivileged_and_probes_the_gateway() -> None:
    resources = _resources()
    deployment = resources["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert {"requests", "limits"} <= set(container["resources"])
    # The kubelet's SIGKILL comes after the preStop pause and the whole drain.
    config = resources["ConfigMap"]["data"]
    assert int(config["GATEWAY_SHUTDOWN_TIMEOUT"]) == SHIPPED_SHUTDOWN
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    drain = int(config["GATEWAY_SHUTDOWN_TIMEOUT"]) + int(config["GATEWAY_BACKGROUND_STOP_TIMEOUT"])
    assert pod["terminationGracePeriodSeconds"] > pause + drain
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    selector = deployment["spec"]["selector"]["matchLabels"].items()
    for kind in ("PodDisruptionBudget", "Service"):
        spec = resources[kind]["spec"]
        assert (spec["selector"].get("matchLabels") or spec["selector"]).items() == selector
    hpa = resources["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["minReplicas"] >= 2  # the PodDisruptionBudget leaves one serving


def test_every_variable_the_manifests_set_is_a_gateway_setting() -> None:
    resources = _resources()
    names = set(resources["ConfigMap"]["data"]) | set(resources["Secret"]["stringData"])
    [container] = resources["Deployment"]["spec"]["template"]["spec"]["containers"]
    names |= {variable["name"] for variable in container.get("env", [])}
    assert names
    for name in names:
        assert name.startswith("GATEWAY_"), name
        assert name.removeprefix("GATEWAY_").lower() in Settings.model_fields, name
    # Secrets only in the Secret.
    assert not {"GATEWAY_ADMIN_TOKEN", "GATEWAY_LINK_SECRET", "GATEWAY_FAL_KEY"} & set(
        resources["ConfigMap"]["data"]
    )
    assert not any(resources["Secret"]["stringData"].values())  # a template, no real value
