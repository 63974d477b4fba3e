"""Deploy DAG: submit or upgrade every streaming job of the pipeline catalog, then wait until each runs.

Per job (in catalog order, as `twitch-pipeline start` submits them):
  * target ``kubernetes``: render the FlinkDeployment from the same code as `k8s/`; create it with
    ``FlinkKubernetesOperator`` when absent, else patch its spec (new image/args, ``upgradeMode: savepoint``)
    so the operator upgrades it through a savepoint; wait for RUNNING/STABLE of the new generation.
  * target ``local``: `twitch-pipeline submit <job>` against the local Flink cluster, wait for RUNNING.
The target is the ``TWITCH_PIPELINE_AIRFLOW_FLINK_TARGET`` setting, or the ``target`` param of a run.
"""

from __future__ import annotations

import datetime as dt
import json

from airflow.providers.apache.flink.operators.flink_kubernetes import FlinkKubernetesOperator
from airflow.sdk import DAG, Param, TaskGroup, task

from airflow_dags.common import DEFAULT_ARGS, KUBERNETES_CONN_ID, START_DATE, TAGS, TARGETS
from connectors import catalog
from twitch_pipeline.k8s_manifests import IMAGE

PARAMS = {
    "jobs": Param("", type="string", description="Comma-separated streaming jobs to deploy; empty means all of them."),
    "target": Param("", type="string", enum=["", *TARGETS], description="Empty means the TWITCH_PIPELINE_AIRFLOW_FLINK_TARGET setting."),
    "image": Param(IMAGE, type="string", description="Container image of the Flink jobs (Kubernetes target)."),
    "namespace": Param("twitch-pipeline", type="string", description="Namespace of the FlinkDeployments (Kubernetes target)."),
}


def _target(params) -> str:
    from airflow_dags.common import flink_target, settings

    return params["target"] or flink_target(settings())


def job_group(job: catalog.Job) -> TaskGroup:
    with TaskGroup(job.name) as group:

        # none_failed: a job left out by the `jobs` param skips its group, and the next job's group still runs.
        @task.branch(task_id="plan", trigger_rule="none_failed")
        def plan(params=None, ti=None) -> str | None:
            """Local submit, Kubernetes create or Kubernetes upgrade; pushes the manifest for the latter two."""
            from airflow_dags import flink_targets
            from airflow_dags.common import settings

            selected = [j.strip() for j in params["jobs"].split(",") if j.strip()]
            unknown = set(selected) - {j.name for j in catalog.streaming_jobs()}
            if unknown:
                raise ValueError(f"no streaming job named {', '.join(sorted(unknown))} in connectors/catalog.py")
            if selected and job.name not in selected:
                return None
            if _target(params) == "local":
                return f"{job.name}.submit_local"
            manifest = flink_targets.render(settings(), job, image=params["image"], namespace=params["namespace"])
            ti.xcom_push(key="manifest", value=json.dumps(manifest))
            existing = flink_targets.get_deployment(flink_targets.hook(KUBERNETES_CONN_ID), manifest["metadata"]["name"], params["namespace"])
            return f"{job.name}.{'upgrade' if existing else 'create'}"

        @task(task_id="submit_local")
        def submit_local() -> str:
            from airflow_dags import flink_targets
            from airflow_dags.common import settings

            return flink_targets.submit_local(settings(), job.name)

        create = FlinkKubernetesOperator(
            task_id="create",
            application_file=f"{{{{ ti.xcom_pull(task_ids='{job.name}.plan', key='manifest') }}}}",
            namespace="{{ params.namespace }}",
            kubernetes_conn_id=KUBERNETES_CONN_ID,
        )

        @task(task_id="upgrade")
        def upgrade(ti=None) -> int:
            from airflow_dags import flink_targets

            manifest = json.loads(ti.xcom_pull(task_ids=f"{job.name}.plan", key="manifest"))
            patched = flink_targets.patch_deployment(flink_targets.hook(KUBERNETES_CONN_ID), manifest)
            return patched["metadata"].get("generation", 0)

        @task.sensor(task_id="wait_running", poke_interval=2, timeout=900, mode="poke", trigger_rule="none_failed_min_one_success")
        def wait_running(params=None, ti=None) -> bool:
            from airflow_dags import flink_targets
            from airflow_dags.common import settings

            if _target(params) == "local":
                from twitch_pipeline.jobs import find_active

                active = find_active(settings(), job.name)
                return active is not None and flink_targets.local_job_reached(settings(), active["id"], "RUNNING")
            k8s = flink_targets.hook(KUBERNETES_CONN_ID)
            resource = flink_targets.get_deployment(k8s, flink_targets.deployment_name(job), params["namespace"])
            return resource is not None and flink_targets.deployment_reached(resource, "RUNNING")

        chosen = plan()
        chosen >> [submit_local(), create, upgrade()] >> wait_running()
    return group


with DAG(
    "flink_deploy",
    description="Submit or upgrade (through a savepoint) every streaming Flink job and wait until it runs",
    doc_md=__doc__,
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args={**DEFAULT_ARGS, "execution_timeout": dt.timedelta(minutes=30)},
    params=PARAMS,
    tags=[*TAGS, "flink", "deploy"],
) as dag:
    previous = None
    for streaming_job in catalog.streaming_jobs():
        group = job_group(streaming_job)
        if previous is not None:
            previous >> group
        previous = group
