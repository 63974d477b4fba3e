"""Data quality as code: the checks declared in ``checks.yaml`` (dbt's test vocabulary), run against
ClickHouse and the Iceberg lake, reported, and recorded in ClickHouse's ``quality_results``.

This package is the API the CLI (`twitch-pipeline check`) and the Airflow data quality DAG share; it imports
neither PyFlink nor Airflow, and loads clickhouse-connect, pyiceberg and confluent-kafka only when used::

    from connectors.quality import run_checks, format_report, write_results, reconcile_counts
    results = run_checks(settings, tables=["chat_silver"], stores=("clickhouse", "iceberg"))
    print(format_report(results)); write_results(settings, results)
    if failed(results): raise ...
    counts = reconcile_counts(settings, "game_minute_stats", datetime.date(2026, 11, 29))
    write_results(settings, [reconciliation_result(counts)])
"""

from connectors.quality.reconcile import reconcile_counts, reconciliation_result
from connectors.quality.results import MAX_EXAMPLES, CheckResult
from connectors.quality.runner import RESULTS_TABLE, failed, format_report, run_checks, summary, write_results
from connectors.quality.spec import CHECKS_FILE, STORES, Check, QualityConfigError, load_checks

__all__ = [
    "CHECKS_FILE", "MAX_EXAMPLES", "RESULTS_TABLE", "STORES", "Check", "CheckResult", "QualityConfigError",
    "failed", "format_report", "load_checks", "reconcile_counts", "reconciliation_result", "run_checks", "summary", "write_results",
]
