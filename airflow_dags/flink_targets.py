"""Running Flink jobs from Airflow on either target: the local cluster or the Flink Kubernetes Operator.

Kubernetes: FlinkDeployments rendered by :func:`twitch_pipeline.k8s_manifests.render_flink_deployment`
(the renderer behind `k8s/`), created with ``FlinkKubernetesOperator`` and upgraded in place by a merge
patch of their spec with ``job.upgradeMode: savepoint`` (the operator creates with POST only and fails with
409 on an existing name). Progress is read from the resource's status, as the operator reports it.

Local: the main venv's `twitch-pipeline submit` (`flink run`, which needs PyFlink, absent from Airflow's
venv), then the JobManager's REST API for the job's state.
"""

from __future__ import annotations

import json
from typing import Any

from connectors import catalog
from twitch_pipeline.settings import Settings

GROUP, VERSION, PLURAL = "flink.apache.org", "v1beta1", "flinkdeployments"


class JobFailed(RuntimeError):
    """The Flink job reached a terminal state other than the expected one; retrying will not help by itself."""


# -- Kubernetes --------------------------------------------------------------------------------------


def render(settings: Settings, job: catalog.Job, *, image: str, namespace: str, bounded: bool = False, args: tuple[str, ...] = ()) -> dict[str, Any]:
    from twitch_pipeline.k8s_manifests import cluster_settings, render_flink_deployment

    return render_flink_deployment(cluster_settings(settings), job, image=image, namespace=namespace, bounded=bounded, args=args)


def deployment_name(job: catalog.Job, *, bounded: bool = False) -> str:
    from twitch_pipeline.k8s_manifests import deployment_name

    return deployment_name(job, bounded=bounded)


def hook(conn_id: str):
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

    return KubernetesHook(conn_id=conn_id)


def get_deployment(k8s, name: str, namespace: str) -> dict[str, Any] | None:
    from kubernetes.client.exceptions import ApiException

    try:
        return k8s.custom_object_client.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except ApiException as err:
        if err.status == 404:
            return None
        raise


def upgrade_patch(manifest: dict[str, Any]) -> dict[str, Any]:
    """The merge patch that moves an existing deployment to ``manifest``'s spec through a savepoint.

    The operator notices the changed spec, stops the job with a savepoint, and starts the new image/args
    from it. An unchanged spec changes nothing: re-running the DAG is a no-op.
    """
    spec = json.loads(json.dumps(manifest["spec"]))
    spec.setdefault("job", {})["upgradeMode"] = "savepoint"
    return {"metadata": {"labels": manifest["metadata"].get("labels", {})}, "spec": spec}


def patch_deployment(k8s, manifest: dict[str, Any]) -> dict[str, Any]:
    meta = manifest["metadata"]
    return k8s.custom_object_client.patch_namespaced_custom_object(GROUP, VERSION, meta["namespace"], PLURAL, meta["name"], upgrade_patch(manifest))


def deployment_reached(resource: dict[str, Any], wanted: str) -> bool:
    """True once the operator has reconciled the latest spec and the job is in state ``wanted``.

    ``wanted`` is RUNNING for a streaming job (with a STABLE lifecycle) and FINISHED for a bounded one.
    Status from before the latest spec change (observedGeneration behind the generation) does not count.
    """
    status = resource.get("status") or {}
    generation = resource.get("metadata", {}).get("generation", 0)
    if status.get("observedGeneration", 0) < generation:
        return False
    state = (status.get("jobStatus") or {}).get("state")
    lifecycle = status.get("lifecycleState")
    if state in ("FAILED", "CANCELED") or lifecycle == "FAILED":
        raise JobFailed(f"FlinkDeployment {resource['metadata']['name']}: job {state}, lifecycle {lifecycle}: {status.get('error') or 'see the operator log'}")
    if wanted == "FINISHED":
        return state == "FINISHED"
    return state == wanted and lifecycle == "STABLE"


# -- local cluster -----------------------------------------------------------------------------------


def submit_local(settings: Settings, job: str, *args: str, fresh: bool = False) -> str:
    """Submit a registered job or driver file to the local cluster; its job id.

    A streaming job already running under its name is not submitted twice, and one stopped by `stop`
    resumes from its savepoint unless ``fresh`` (`submit`'s own rules).
    """
    from twitch_pipeline.backfill import submit_driver

    return submit_driver(settings, job, args, fresh=fresh)


def local_job_reached(settings: Settings, job_id: str, wanted: str) -> bool:
    from twitch_pipeline.platform.flink import Flink

    state = Flink(settings).rest(f"/jobs/{job_id}")["state"]
    if state in ("FAILED", "CANCELED"):
        raise JobFailed(f"Flink job {job_id} is {state}: {settings.flink_rest}/#/job/completed/{job_id}/exceptions")
    return state == wanted
