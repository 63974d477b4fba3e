"""A minimal PyFlink SQL job for the platform test: a Kafka topic, bounded, into an Iceberg table."""

from __future__ import annotations

import argparse

from flink_jobs.runtime import table_env
from twitch_pipeline.settings import load_settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--topic", required=True)
    parser.add_argument("--table", required=True)
    args = parser.parse_args(argv)
    settings = load_settings()
    env = table_env(settings, "topic_to_iceberg", bounded=True)
    env.execute_sql(f"""
        CREATE TEMPORARY TABLE src (id BIGINT, name STRING) WITH (
          'connector' = 'kafka', 'topic' = '{args.topic}',
          'properties.bootstrap.servers' = '{settings.bootstrap_servers}',
          'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset',
          'format' = 'json')""")
    target = f"`{settings.iceberg_catalog}`.`{settings.iceberg_namespace}`.`{args.table}`"
    env.execute_sql(f"CREATE TABLE IF NOT EXISTS {target} (id BIGINT, name STRING)")
    env.execute_sql(f"INSERT INTO {target} SELECT id, name FROM src").wait()


if __name__ == "__main__":
    main()
