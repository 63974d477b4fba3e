"""Data quality DAG: the declared checks and the per-day row-count reconciliation, recorded and enforced.

Hourly: ``checks`` runs every check of ``connectors/quality/checks.yaml`` (nulls, ranges, accepted values,
uniqueness, relationships, freshness against ``TWITCH_PIPELINE_QUALITY_FRESHNESS_SLO_S``) in ClickHouse and
the Iceberg lake; ``reconcile`` counts each output's rows of the run's day in Kafka, ClickHouse and Iceberg
(exactly once means equal). Both record their results in ClickHouse's ``quality_results``, which the
dashboards read; ``verdict`` then fails the run with the readable report when anything failed.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, Param, task

from airflow_dags.common import DEFAULT_ARGS, START_DATE, TAGS
from connectors import catalog

with DAG(
    "data_quality",
    description="Declared data quality checks and Kafka/ClickHouse/Iceberg row-count reconciliation, recorded in quality_results",
    doc_md=__doc__,
    schedule="@hourly",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args={**DEFAULT_ARGS, "execution_timeout": dt.timedelta(minutes=30)},
    params={"tables": Param("", type="string", description="Comma-separated tables to check and reconcile; empty means all of them.")},
    tags=[*TAGS, "data-quality"],
) as dag:

    def _tables(params) -> list[str] | None:
        return [t.strip() for t in params["tables"].split(",") if t.strip()] or None

    @task
    def checks(params=None) -> list[dict]:
        from airflow_dags.common import settings
        from connectors.quality import run_checks, write_results

        loaded = settings()
        results = run_checks(loaded, tables=_tables(params))
        write_results(loaded, results)
        return [r.to_dict() for r in results]

    @task
    def reconcile(params=None, data_interval_end=None, run_id=None) -> list[dict]:
        """The day the run's interval ends in (an hourly run keeps today's counts current)."""
        from airflow_dags.common import settings
        from connectors.quality import reconcile_counts, reconciliation_result, write_results

        loaded = settings()
        day = (data_interval_end - dt.timedelta(microseconds=1)).date()
        counts = [reconcile_counts(loaded, o.name, day) for o in catalog.OUTPUTS if _tables(params) is None or o.name in _tables(params)]
        results = [reconciliation_result(c, run_id=run_id) for c in counts]
        write_results(loaded, results)
        return [r.to_dict() for r in results]

    @task(retries=0)
    def verdict(check_results: list[dict], reconciled: list[dict]) -> str:
        """Fails the run with the full report when a check or a reconciliation failed; retrying would not help."""
        from connectors.quality import CheckResult, failed, format_report

        results = [CheckResult.from_dict(r) for r in [*check_results, *reconciled]]
        report = format_report(results)
        if failed(results):
            raise ValueError(f"data quality failed:\n{report}")
        return report

    verdict(checks(), reconcile())
