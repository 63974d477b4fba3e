"""Maintenance DAG: Iceberg compaction and a check of its snapshot expiry, ClickHouse TTL and partition checks, Kafka retention.

Daily, each task independent of the others (the steps are in :mod:`airflow_dags.maintenance_tasks`):

* ``check_snapshot_expiry``: no lake table holds snapshots long past ``TWITCH_PIPELINE_LAKE_SNAPSHOT_RETENTION_S``.
  The expiry itself runs every few minutes beside the pipeline (the local supervisor, the ``lake-expire-snapshots``
  CronJob on Kubernetes), as Iceberg's Java action, which deletes the files only the expired snapshots used (the
  files ``compact`` replaced among them).
* ``compact``: rewrites a lake table's day partitions made of many small files (streaming commits write a few
  files per checkpoint) into one file per partition, as one atomic overwrite.
* ``check_clickhouse``: every table of the catalog has the TTL and partitioning its migration declares, and no
  partition holds data older than the TTL (TTL merges are running).
* ``check_kafka_retention``: every topic's ``cleanup.policy`` and ``retention.ms`` on the broker equal the catalog's.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, task

from airflow_dags.common import DEFAULT_ARGS, START_DATE, TAGS

with DAG(
    "maintenance",
    description="Iceberg small-file compaction and snapshot expiry check, ClickHouse TTL/partition and Kafka retention checks",
    doc_md=__doc__,
    schedule="@daily",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args={**DEFAULT_ARGS, "execution_timeout": dt.timedelta(hours=2)},
    tags=[*TAGS, "maintenance"],
) as dag:

    @task
    def check_snapshot_expiry() -> dict:
        from airflow_dags import maintenance_tasks
        from airflow_dags.common import settings

        return maintenance_tasks.check_snapshot_expiry(settings())

    @task
    def compact() -> dict:
        from airflow_dags import maintenance_tasks
        from airflow_dags.common import settings

        return maintenance_tasks.compact(settings())

    @task
    def check_clickhouse() -> dict:
        from airflow_dags import maintenance_tasks
        from airflow_dags.common import settings

        return maintenance_tasks.check_clickhouse(settings())

    @task
    def check_kafka_retention() -> dict:
        from airflow_dags import maintenance_tasks
        from airflow_dags.common import settings

        return maintenance_tasks.check_kafka_retention(settings())

    compact()
    check_snapshot_expiry()
    check_clickhouse()
    check_kafka_retention()
