"""A bounded PyFlink SQL job for the REST catalog test: numbered rows into an Iceberg table of the project's catalog."""

from __future__ import annotations

import argparse

from flink_jobs.runtime import table_env
from twitch_pipeline.settings import load_settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--table", required=True)
    parser.add_argument("--rows", required=True, type=int)
    args = parser.parse_args(argv)
    settings = load_settings()
    env = table_env(settings, "rows_to_iceberg", bounded=True)  # registers the catalog the settings describe
    env.execute_sql(f"""
        CREATE TEMPORARY TABLE numbers (id BIGINT) WITH (
          'connector' = 'datagen', 'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '{args.rows}')""")
    target = f"`{settings.iceberg_catalog}`.`{settings.iceberg_namespace}`.`{args.table}`"
    env.execute_sql(f"CREATE TABLE IF NOT EXISTS {target} (id BIGINT, name STRING)")
    env.execute_sql(f"INSERT INTO {target} SELECT id, CONCAT('row-', CAST(id AS STRING)) FROM numbers").wait()


if __name__ == "__main__":
    main()
