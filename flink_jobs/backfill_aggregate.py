"""Backfill driver: the aggregates of whole days recomputed from the Iceberg lake, into staging tables.

Runs the streaming aggregations' own window SQL (``aggregate_windows.sql`` and ``chat_aggregate_windows.sql``,
all but their INSERTs) over ``backfill_source.sql``, a bounded read of the lake's ``game_streams_enriched`` and
``chat_silver`` for the days asked, and writes each gold table's rows to the Iceberg staging table
``twitch_pipeline.backfill`` created for this run. Publishing (the atomic partition swaps in Iceberg and
ClickHouse) is not done here: see :mod:`twitch_pipeline.backfill`. The driver returns once the job is
submitted; the caller watches the job until it FINISHED.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re

from connectors.iceberg import flink_catalog_ddl
from flink_jobs.runtime import execute_script, load_sql, sql_params, table_env
from twitch_pipeline.settings import Settings, load_settings

#: The lake tables the backfill reads (``${lake_source:<table>}`` in backfill_source.sql).
LAKE_TABLES = ("game_streams_enriched", "chat_silver")
#: The window SQL of the streaming aggregations, whose views the backfill writes to staging.
WINDOW_SCRIPTS = ("aggregate_windows", "chat_aggregate_windows")


def lake_table_options(settings: Settings, table: str) -> str:
    """WITH options of an ``iceberg`` connector table on a lake table, from the catalog's own DDL."""
    options = dict(re.findall(r"'([^']+)'='([^']*)'", flink_catalog_ddl(settings)))
    del options["type"]
    options.update({"connector": "iceberg", "catalog-name": settings.iceberg_catalog, "catalog-database": settings.iceberg_namespace, "catalog-table": table})
    return ", ".join(f"'{k}' = '{v}'" for k, v in options.items())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="backfill_aggregate", description=__doc__)
    parser.add_argument("--name", required=True, help="pipeline.name of this run (unique per run)")
    parser.add_argument("--first-day", required=True, type=dt.date.fromisoformat, help="first day recomputed (UTC)")
    parser.add_argument("--end-day", required=True, type=dt.date.fromisoformat, help="day after the last one recomputed")
    parser.add_argument("--bounded", action="store_true", help="accepted for the Kubernetes renderer's bounded runs; a backfill always is")
    parser.add_argument("--target", action="append", required=True, metavar="GOLD=STAGING", help="gold table and its staging table, repeatable")
    args = parser.parse_args(argv)
    settings = load_settings()
    env = table_env(settings, args.name, bounded=True)
    params = {**sql_params(settings, args.name, bounded=True), "first_day": args.first_day.isoformat(), "end_day": args.end_day.isoformat(),
              **{f"lake_source:{table}": lake_table_options(settings, table) for table in LAKE_TABLES}}
    execute_script(env, "backfill_source", params)
    for script in WINDOW_SCRIPTS:
        for statement in load_sql(script, params):
            if not statement.upper().startswith("INSERT"):
                env.execute_sql(statement)
    inserts = env.create_statement_set()
    for target in args.target:
        gold, _, staging = target.partition("=")
        inserts.add_insert_sql(f"INSERT INTO `{settings.iceberg_catalog}`.`{settings.iceberg_namespace}`.`{staging}` SELECT * FROM {gold}")
    inserts.execute()


if __name__ == "__main__":
    main()
