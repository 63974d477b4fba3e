"""`make k8s-check`: every overlay builds, every object validates strictly, the policies hold, the Dockerfile lints.

Offline: kustomize through kubectl, Kubernetes' JSON Schemas from `kubernetes-validate`, the CRDs' own schemas from
../shared/k8s-crds/ (skipped, saying so, only where that folder is missing).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from connectors import catalog
from tests.k8s import validate
from tests.k8s.validate import CRD_DIR, OVERLAYS, ROOT, build, hadolint, policy_violations, problems

BROKEN = Path(__file__).resolve().parents[1] / "k8s" / "fixtures" / "broken.yaml"
DOCS = ROOT / "docs" / "kubernetes.md"

needs_crds = pytest.mark.skipif(not CRD_DIR.is_dir(), reason=f"CRD schemas not found at {CRD_DIR} (CI lays shared/ beside the clone)")
needs_kubectl = pytest.mark.skipif(validate.kubectl() is None, reason="kubectl (with its bundled kustomize) is not on PATH")


@pytest.fixture(scope="module", params=OVERLAYS, ids=[p.name for p in OVERLAYS])
def overlay(request) -> tuple[Path, list[dict]]:
    if validate.kubectl() is None:
        pytest.skip("kubectl (with its bundled kustomize) is not on PATH")
    return request.param, build(request.param)


def test_there_are_dev_and_prod_overlays():
    assert {p.name for p in OVERLAYS} >= {"dev", "prod"}


@needs_crds
def test_every_object_validates_strictly_and_follows_the_policies(overlay):
    path, objects = overlay
    found = problems(objects)
    assert not found, f"{path.name}:\n" + "\n".join(found)


def test_overlay_deploys_the_whole_platform(overlay):
    path, objects = overlay
    kinds = Counter(o["kind"] for o in objects)
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert kinds["KafkaTopic"] == len(catalog.TOPICS)
    assert kinds["FlinkDeployment"] == len(catalog.streaming_jobs())
    assert kinds["Kafka"] == 1 and kinds["KafkaNodePool"] >= 1
    for expected in [("StatefulSet", "clickhouse"), ("Job", "clickhouse-migrations"), ("Deployment", "iceberg-rest"),
                     ("Deployment", "producer"), ("StatefulSet", "clickhouse-sink"), ("Deployment", "grafana"),
                     ("Deployment", "airflow-api-server"), ("Deployment", "airflow-scheduler"), ("Deployment", "airflow-dag-processor"),
                     ("Deployment", "airflow-triggerer"), ("ClusterRole", "twitch-pipeline-airflow-flink-reader"), ("NetworkPolicy", "clickhouse-clients")]:
        assert expected in names, f"{path.name} lacks {expected}"
    assert kinds["PodDisruptionBudget"] >= 4
    namespace = next(o["metadata"]["name"] for o in objects if o["kind"] == "Namespace")
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
    assert all(o["metadata"].get("namespace") == namespace for o in objects if o["kind"] not in cluster_scoped)
    binding = next(o for o in objects if o["kind"] == "ClusterRoleBinding")
    assert binding["subjects"][0]["namespace"] == namespace


def test_grafana_mounts_every_dashboard_file(overlay):
    _, objects = overlay
    dashboards = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("grafana-dashboards"))
    assert sorted(dashboards.get("data", {})) == sorted(p.name for p in (ROOT / "k8s" / "grafana" / "dashboards").glob("*.json"))
    grafana = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "grafana")
    mounted = {v["configMap"]["name"] for v in grafana["spec"]["template"]["spec"]["volumes"] if "configMap" in v}
    assert dashboards["metadata"]["name"] in mounted  # kustomize rewrote the reference to the hashed name


def test_every_referenced_secret_is_documented(overlay):
    """Secrets are created out of band: each one the manifests reference, with its keys, is in docs/kubernetes.md."""
    _, objects = overlay
    docs = DOCS.read_text(encoding="utf-8")
    refs = set()

    def walk(node):
        if isinstance(node, dict):
            if "secretKeyRef" in node:
                refs.add((node["secretKeyRef"]["name"], node["secretKeyRef"]["key"]))
            if "secretName" in node:
                refs.update((node["secretName"], item["key"]) for item in node.get("items", []))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(objects)
    missing = [f"{name}/{key}" for name, key in sorted(refs) if f"`{name}`" not in docs or f"`{key}`" not in docs]
    assert not missing, f"secrets not described in docs/kubernetes.md: {missing}"


@needs_crds
@pytest.mark.parametrize("obj", [d for d in yaml.safe_load_all(BROKEN.read_text(encoding="utf-8")) if d], ids=lambda d: d["metadata"]["name"])
def test_each_broken_manifest_fails_with_its_reason(obj):
    expected = obj["metadata"]["annotations"]["expect-error"]
    found = problems([obj])
    assert any(expected in p for p in found), f"expected an error containing {expected!r}, got {found}"


def test_generated_flink_deployment_has_no_policy_exemption_beyond_its_main_container():
    """The operator sizes flink-main-container; any other container in the pod template still needs limits."""
    fd = next(o for o in build(ROOT / "k8s" / "base" / "generated" / "flink-deployments.yaml"))
    sidecar = {**fd, "spec": {**fd["spec"], "podTemplate": {**fd["spec"]["podTemplate"], "spec": {
        **fd["spec"]["podTemplate"]["spec"],
        "containers": [*fd["spec"]["podTemplate"]["spec"]["containers"], {"name": "sidecar", "image": "busybox:1.37.0", "securityContext": {"allowPrivilegeEscalation": False}}],
    }}}}
    assert policy_violations(fd) == []
    assert any("sidecar" in v and "limits" in v for v in policy_violations(sidecar))


def test_dockerfile_passes_hadolint():
    code, out = hadolint()
    assert code == 0, out


def test_hadolint_fails_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\n", encoding="utf-8")
    code, out = hadolint(bad)
    assert code != 0 and "DL3007" in out  # latest tag
