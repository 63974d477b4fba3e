"""`make k8s-check`: every overlay builds, every object validates strictly, the policies hold, the Dockerfile lints.

Offline: kustomize through kubectl, Kubernetes' JSON Schemas from `kubernetes-validate`, the CRDs' own schemas from
../shared/k8s-crds/ (skipped, saying so, only where that folder is missing).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest
import yaml

from connectors import catalog
from connectors.iceberg import S3_FILE_IO, flink_catalog_options, pyiceberg_properties
from tests.k8s import validate
from tests.k8s.validate import CRD_DIR, DOCKERFILE, OVERLAYS, ROOT, build, hadolint, policy_violations, problems
from twitch_pipeline.k8s_manifests import CONFIGMAP
from twitch_pipeline.settings import load_settings

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
                     ("Deployment", "producer"), ("StatefulSet", "clickhouse-sink"), ("CronJob", "lake-expire-snapshots"), ("Deployment", "grafana"),
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


#: The object store each overlay's lake is on: (S3 endpoint, path-style access); prod is AWS S3 itself.
LAKE_STORE = {"dev": ("http://minio:9000", "true"), "prod": (None, None)}


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def test_lake_is_the_rest_catalog_on_the_overlays_object_store(overlay):
    """The settings each overlay renders make connectors/iceberg.py build the REST catalog with S3FileIO on its store."""
    path, objects = overlay
    data = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == CONFIGMAP)["data"]
    settings = load_settings(environ=data, dotenv=None)  # also runs the settings' own consistency checks
    flink, python = flink_catalog_options(settings), pyiceberg_properties(settings)
    assert flink["catalog-type"] == "rest" and flink["io-impl"] == S3_FILE_IO and flink["uri"] == python["uri"]
    assert flink["warehouse"] == python["warehouse"] and flink["warehouse"].startswith("s3://")
    endpoint, path_style = LAKE_STORE[path.name]
    assert flink.get("s3.endpoint") == python.get("s3.endpoint") == endpoint
    assert flink.get("s3.path-style-access") == path_style
    assert flink["client.region"] == python["s3.region"] == data["TWITCH_PIPELINE_ICEBERG_S3_REGION"]
    assert not any("key" in k for k in {**flink, **python}), "keys come from the Secret through the AWS chain, not the ConfigMap"
    services = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Service"}
    host, port = settings.iceberg_uri.removeprefix("http://").split(":")
    assert int(port) in {p["port"] for p in services[host]["spec"]["ports"]}
    if endpoint:
        host, port = endpoint.removeprefix("http://").split(":")
        assert int(port) in {p["port"] for p in services[host]["spec"]["ports"]}
    # The REST server reads the warehouse, region (and in dev the endpoint) from the same ConfigMap keys.
    rest = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "iceberg-rest")
    env = _env(rest["spec"]["template"]["spec"]["containers"][0])
    for variable, key in {"CATALOG_WAREHOUSE": "WAREHOUSE", "CATALOG_CLIENT_REGION": "S3_REGION",
                          **({"CATALOG_S3_ENDPOINT": "S3_ENDPOINT", "CATALOG_S3_PATH__STYLE__ACCESS": "S3_PATH_STYLE_ACCESS"} if endpoint else {})}.items():
        assert env[variable]["valueFrom"]["configMapKeyRef"]["key"] == f"TWITCH_PIPELINE_ICEBERG_{key}", variable
    # Everything that reads or writes lake files gets the object store's keys (optional: an IAM role may serve them).
    readers = [fd["spec"]["podTemplate"]["spec"]["containers"][0] for fd in objects if fd["kind"] == "FlinkDeployment"]
    readers += [c for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] in ("iceberg-rest", "airflow-scheduler")
                for c in o["spec"]["template"]["spec"]["containers"]]
    for container in readers:
        env = _env(container)
        for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            assert env[variable]["valueFrom"]["secretKeyRef"]["name"] == "object-store-credentials", (container["name"], variable)


def test_image_carries_iceberg_s3fileio_of_the_pinned_iceberg_release():
    """S3FileIO lives in iceberg-aws-bundle, which must match iceberg-flink-runtime's release; the image builds the pom."""
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    pom = ET.parse(ROOT / "jvm" / "pom.xml").getroot()
    items = {i.findtext("m:artifactId", namespaces=ns): i.findtext("m:version", namespaces=ns)
             for e in pom.iterfind(".//m:execution", ns) if e.findtext("m:id", namespaces=ns) == "flink-connectors"
             for i in e.iterfind(".//m:artifactItem", ns)}
    assert items["iceberg-aws-bundle"] == items["iceberg-flink-runtime-2.0"] == "${iceberg.version}"
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")
    assert "mvn -q -B -f jvm/pom.xml package" in dockerfile and "COPY jvm/src jvm/src" in dockerfile
    assert "COPY --from=jars /jars/flink/ /opt/flink/lib/" in dockerfile
