"""Backfill DAG: recompute the minute aggregates of whole days from the Iceberg lake and swap them in.

The gold tables of both aggregations: the streams' (game, language, share, duration, top streams) and the
chat's (``chat_minute_stats``, ``chat_top_emotes``), recomputed from ``lake.game_streams_enriched`` and
``lake.chat_silver``.

One run per day partition: the run's data interval is the day it recomputes, so Airflow's own backfill
(``airflow backfill create --dag-id aggregates_backfill --from-date ... --to-date ...``) and catchup drive it.
A manual run may instead name a range with the ``start``/``end`` params, and pick tables with ``tables``.

Per day (a mapped task group): ``prepare`` creates this run's staging tables; the bounded Flink job fills
them (``compute_local`` on the local cluster, or a FlinkDeployment created by ``FlinkKubernetesOperator``
and watched by ``wait_finished`` on ``status.jobStatus.state``); ``publish`` swaps the day partitions of
ClickHouse and the Iceberg gold tables atomically. The steps are :mod:`twitch_pipeline.backfill`'s, which
`twitch-pipeline backfill --from --to` runs too.
"""

from __future__ import annotations

import datetime as dt
import json

from airflow.providers.apache.flink.operators.flink_kubernetes import FlinkKubernetesOperator
from airflow.sdk import DAG, Param, task, task_group
from airflow.sdk.exceptions import AirflowSkipException

from airflow_dags.common import DEFAULT_ARGS, KUBERNETES_CONN_ID, START_DATE, TAGS
from twitch_pipeline.k8s_manifests import IMAGE

PARAMS = {
    "start": Param("", type="string", description="First day (YYYY-MM-DD); empty means the run's own day (its data interval)."),
    "end": Param("", type="string", description="Last day, included; empty means `start`."),
    "tables": Param("", type="string", description="Comma-separated gold tables; empty means all of them."),
    "image": Param(IMAGE, type="string", description="Container image of the Flink job (Kubernetes target)."),
    "namespace": Param("twitch-pipeline", type="string", description="Namespace of the FlinkDeployment (Kubernetes target)."),
}


class KubernetesOnlyFlinkOperator(FlinkKubernetesOperator):
    """``FlinkKubernetesOperator`` that skips itself on the local target.

    A skip decided by the task itself: short-circuit and branch operators address the tasks they skip
    without their map index, which misfires inside a mapped task group (seen with Airflow 3.3).
    """

    def execute(self, context):
        from airflow_dags.common import flink_target, settings

        if flink_target(settings()) != "kubernetes":
            raise AirflowSkipException("the local target runs the job on the local cluster")
        return super().execute(context)


@task
def backfill_days(params=None, data_interval_start=None) -> list[str]:
    from twitch_pipeline import backfill

    if not params["start"]:
        return [data_interval_start.date().isoformat()]
    first = dt.date.fromisoformat(params["start"])
    last = dt.date.fromisoformat(params["end"]) if params["end"] else first
    return [d.isoformat() for d in backfill.days(first, last)]


@task_group
def backfill_day(day: str):
    @task
    def prepare(day: str, params=None, ti=None) -> dict:
        """This run's staging tables; on Kubernetes also the FlinkDeployment to create, named after this run."""
        from airflow_dags import flink_targets
        from airflow_dags.common import flink_target, settings
        from twitch_pipeline import backfill

        loaded = settings()
        plan = backfill.prepare(loaded, dt.date.fromisoformat(day), backfill.parse_tables(params["tables"]))
        result = plan.to_dict()
        if flink_target(loaded) == "kubernetes":
            manifest = flink_targets.render(loaded, backfill.BACKFILL_JOB, image=params["image"], namespace=params["namespace"], bounded=True, args=plan.driver_args())
            # One deployment per run: a fixed name would make the operator's create fail (409) on the next day.
            manifest["metadata"]["name"] = f"{manifest['metadata']['name']}-{plan.run_id.replace('_', '-')}"
            result["deployment"] = manifest["metadata"]["name"]
            ti.xcom_push(key="manifest", value=json.dumps(manifest))
        return result

    @task(max_active_tis_per_dagrun=1)
    def compute_local(plan: dict) -> str:
        from airflow_dags.common import flink_target, settings
        from twitch_pipeline import backfill

        loaded = settings()
        if flink_target(loaded) != "local":
            raise AirflowSkipException("the Kubernetes target runs the job as a FlinkDeployment")
        return backfill.compute_local(loaded, backfill.Plan.from_dict(plan))

    create = KubernetesOnlyFlinkOperator(
        task_id="create",
        application_file="{{ ti.xcom_pull(task_ids='backfill_day.prepare', key='manifest', map_indexes=ti.map_index) }}",
        namespace="{{ params.namespace }}",
        kubernetes_conn_id=KUBERNETES_CONN_ID,
        max_active_tis_per_dagrun=1,
    )

    @task.sensor(poke_interval=10, timeout=4 * 3600, mode="reschedule")
    def wait_finished(plan: dict, params=None) -> bool:
        from airflow_dags import flink_targets

        resource = flink_targets.get_deployment(flink_targets.hook(KUBERNETES_CONN_ID), plan["deployment"], params["namespace"])
        return resource is not None and flink_targets.deployment_reached(resource, "FINISHED")

    @task(trigger_rule="none_failed_min_one_success")
    def publish(plan: dict, params=None) -> dict:
        """The atomic swaps; then the finished FlinkDeployment (if any) is deleted."""
        from airflow_dags import flink_targets
        from airflow_dags.common import settings
        from twitch_pipeline import backfill

        counts = backfill.publish(settings(), backfill.Plan.from_dict(plan))
        if "deployment" in plan:
            flink_targets.hook(KUBERNETES_CONN_ID).delete_custom_object(
                flink_targets.GROUP, flink_targets.VERSION, flink_targets.PLURAL, plan["deployment"], params["namespace"])
        return counts

    plan = prepare(day)
    computed = compute_local(plan)
    waited = wait_finished(plan)
    plan >> create >> waited
    [computed, waited] >> publish(plan)


with DAG(
    "aggregates_backfill",
    description="Recompute the minute aggregates of whole days from the Iceberg lake; atomic partition swaps in ClickHouse and Iceberg",
    doc_md=__doc__,
    schedule="@daily",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args={**DEFAULT_ARGS, "execution_timeout": dt.timedelta(hours=4)},
    params=PARAMS,
    tags=[*TAGS, "flink", "backfill"],
) as dag:
    backfill_day.expand(day=backfill_days())
