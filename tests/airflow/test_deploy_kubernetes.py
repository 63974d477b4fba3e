"""The deploy DAG against a fake Kubernetes API: create, wait, upgrade through a savepoint; CRD-valid manifests."""

from __future__ import annotations

import json

import pytest
import yaml

from connectors import catalog
from tests.airflow.conftest import REPO
from tests.airflow.fake_kubernetes import PREFIX, FakeKubernetes

#: In CI the repository is cloned elsewhere with shared/ copied beside it, as here.
CRD = REPO.parent / "shared" / "k8s-crds" / "flink-kubernetes-operator-1.15.0" / "flinkdeployments.flink.apache.org-v1.yml"
NAMESPACE = "twitch-test"


def strict(schema: dict) -> dict:
    """The CRD's structural schema as JSON Schema, refusing unknown fields (the API server would prune them silently)."""
    out = {k: v for k, v in schema.items() if not k.startswith("x-kubernetes-") and k != "description"}
    if "properties" in out:
        out["properties"] = {k: strict(v) for k, v in out["properties"].items()}
        if "additionalProperties" not in out and not schema.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = strict(out["additionalProperties"])
    if "items" in out:
        out["items"] = strict(out["items"])
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    return out


@pytest.fixture(scope="module")
def crd_schema() -> dict:
    crd = yaml.safe_load(CRD.read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1beta1")
    schema = strict(version["schema"]["openAPIV3Schema"])
    # The API server checks these itself; the CRD's schema covers spec and status.
    schema["properties"].update({"apiVersion": {"const": "flink.apache.org/v1beta1"}, "kind": {"const": "FlinkDeployment"}, "metadata": {"type": "object"}})
    return schema


def deploy_manifests() -> list[dict]:
    """What the deploy DAG submits: one FlinkDeployment per streaming job, rendered as its `plan` task does."""
    from airflow_dags import flink_targets
    from twitch_pipeline.settings import load_settings

    settings = load_settings(environ={}, dotenv=None)
    return [flink_targets.render(settings, job, image="registry.example/twitch-pipeline:1", namespace=NAMESPACE) for job in catalog.streaming_jobs()]


def test_every_deployment_validates_against_the_crd(crd_schema):
    import jsonschema

    from airflow_dags import flink_targets
    from twitch_pipeline import backfill
    from twitch_pipeline.settings import load_settings

    manifests = deploy_manifests()
    backfill_plan = backfill.Plan.new(__import__("datetime").date(2026, 11, 28), backfill.parse_tables(""))
    manifests.append(flink_targets.render(load_settings(environ={}, dotenv=None), backfill.BACKFILL_JOB, image="x:1", namespace=NAMESPACE,
                                          bounded=True, args=backfill_plan.driver_args()))
    for manifest in manifests:
        jsonschema.validate(manifest, crd_schema)
        patched = {**manifest, "spec": flink_targets.upgrade_patch(manifest)["spec"]}
        jsonschema.validate(patched, crd_schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**manifests[0], "spec": {**manifests[0]["spec"], "jobb": {}}}, crd_schema)


@pytest.fixture
def fake_kubernetes(tmp_path, monkeypatch):
    with FakeKubernetes() as fake:
        config = fake.kubeconfig(tmp_path / "kubeconfig")
        monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", json.dumps({"conn_type": "kubernetes", "extra": {"kube_config_path": str(config)}}))
        yield fake


def run_deploy(run_dags, image: str):
    dag = run_dags["flink_deploy"]
    run = dag.test(run_conf={"target": "kubernetes", "image": image, "namespace": NAMESPACE})
    failed = [(ti.task_id, ti.state) for ti in run.get_task_instances() if ti.state not in ("success", "skipped")]
    return run, failed


def test_deploy_creates_then_upgrades_through_a_savepoint(airflow_db, run_dags, fake_kubernetes):
    names = [m["metadata"]["name"] for m in deploy_manifests()]

    run, failed = run_deploy(run_dags, "registry.example/twitch-pipeline:1")
    assert run.state == "success", failed
    created = [body for path, body in fake_kubernetes.calls("POST")]
    assert [b["metadata"]["name"] for b in created] == names
    assert all(b["spec"]["image"] == "registry.example/twitch-pipeline:1" for b in created)
    assert (f"{PREFIX}/flinkdeployments", None) in fake_kubernetes.calls("GET")  # the provider's cluster-wide LIST
    for name in names:
        status = fake_kubernetes.objects[(NAMESPACE, name)]["status"]
        assert (status["jobStatus"]["state"], status["lifecycleState"]) == ("RUNNING", "STABLE")

    run, failed = run_deploy(run_dags, "registry.example/twitch-pipeline:2")
    assert run.state == "success", failed
    assert len(fake_kubernetes.calls("POST")) == len(names), "an existing deployment must be patched, not created (409)"
    patches = fake_kubernetes.calls("PATCH")
    assert [p.rsplit("/", 1)[-1] for p, _ in patches] == names
    for _, body in patches:
        assert body["spec"]["image"] == "registry.example/twitch-pipeline:2"
        assert body["spec"]["job"]["upgradeMode"] == "savepoint"
    for name in names:
        obj = fake_kubernetes.objects[(NAMESPACE, name)]
        assert obj["metadata"]["generation"] == 2 and obj["status"]["observedGeneration"] == 2
        assert obj["status"]["jobStatus"]["state"] == "RUNNING"

    # Same image again: nothing changes, the DAG still succeeds (re-running a deploy is a no-op).
    run, failed = run_deploy(run_dags, "registry.example/twitch-pipeline:2")
    assert run.state == "success", failed
    assert all(fake_kubernetes.objects[(NAMESPACE, n)]["metadata"]["generation"] == 2 for n in names)


def test_a_failed_deployment_fails_the_run(airflow_db, run_dags, fake_kubernetes):
    from airflow_dags import flink_targets

    resource = {"metadata": {"name": "x", "generation": 1}, "status": {"observedGeneration": 1, "lifecycleState": "FAILED", "error": "image pull"}}
    with pytest.raises(flink_targets.JobFailed, match="image pull"):
        flink_targets.deployment_reached(resource, "RUNNING")
    stale = {"metadata": {"name": "x", "generation": 2}, "status": {"observedGeneration": 1, "lifecycleState": "STABLE", "jobStatus": {"state": "RUNNING"}}}
    assert not flink_targets.deployment_reached(stale, "RUNNING")
