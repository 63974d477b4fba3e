"""The aggregation job's SQL, checked without Flink: parameters, exactly-once sinks, gold tables."""

from __future__ import annotations

import re

import pytest

from flink_jobs.aggregate import GOLD_TABLES, JOB_NAME
from flink_jobs.runtime import load_sql, sql_params
from twitch_pipeline.settings import load_settings


@pytest.fixture(scope="module")
def statements() -> list[str]:
    params = sql_params(load_settings(environ={}, dotenv=None), JOB_NAME, bounded=True)
    # as runtime.start_job runs them: the side outputs every job may write, then the job's own SQL
    return load_sql("side_outputs", params) + load_sql("aggregate_tables", params) + load_sql("aggregate_windows", params)


def kafka_sinks(statements: list[str]) -> dict[str, str]:
    """topic -> DDL of every Kafka table the job writes to (an INSERT's target)."""
    targets = {m.group(1) for s in statements if (m := re.match(r"INSERT INTO (\w+)", s))}
    sinks = {}
    for stmt in statements:
        table, topic = re.match(r"CREATE TEMPORARY TABLE (\w+)", stmt), re.search(r"'topic' = '(\w+)'", stmt)
        if table and topic and table.group(1) in targets:
            sinks[topic.group(1)] = stmt
    return sinks


def source_ddl(statements: list[str]) -> str:
    (source,) = [s for s in statements if s.startswith("CREATE TEMPORARY TABLE game_streams_enriched_json")]
    return source


def test_every_placeholder_is_filled(statements):
    assert not [s for s in statements if "${" in s]


def test_kafka_outputs_are_the_gold_tables_plus_late_events(statements):
    assert set(kafka_sinks(statements)) == {*GOLD_TABLES, "late_events"}


def test_every_kafka_sink_is_exactly_once_with_its_own_transactional_prefix(statements):
    sinks = kafka_sinks(statements).values()
    assert all("'sink.delivery-guarantee' = 'exactly-once'" in s for s in sinks)
    prefixes = [re.search(r"'sink.transactional-id-prefix' = '([^']+)'", s).group(1) for s in sinks]
    assert len(set(prefixes)) == len(prefixes) and all(p.startswith(f"twitch-pipeline-{JOB_NAME}-") for p in prefixes)


def test_source_reads_only_committed_enriched_rows(statements):
    source = source_ddl(statements)
    assert "'topic' = 'game_streams_enriched'" in source
    assert "'properties.isolation.level' = 'read_committed'" in source


def test_gold_tables_partitioned_by_the_driver_are_the_ones_the_sql_creates(statements):
    created = {m.group(1) for s in statements if (m := re.match(r"CREATE TABLE IF NOT EXISTS `[^`]+`\.`[^`]+`\.(\w+)", s))}
    assert created == set(GOLD_TABLES)
