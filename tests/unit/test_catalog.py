"""The pipeline catalog is complete and consistent with the SQL, the drivers and the ClickHouse migrations."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from connectors import catalog
from connectors.migrations import MIGRATIONS_DIR, load_migrations
from connectors.sql_script import split_statements
from flink_jobs import JOBS_DIR, job_file
from flink_jobs.runtime import SQL_DIR

ROOT = Path(__file__).resolve().parents[2]
TOPIC_NAMES = {t.name for t in catalog.TOPICS}


def created_tables() -> dict[str, list[tuple[str, str]]]:
    """table -> [(column, type)] of every CREATE TABLE in the migrations, in order."""
    tables: dict[str, list[tuple[str, str]]] = {}
    for migration in load_migrations(MIGRATIONS_DIR):
        for stmt in split_statements(migration.sql):
            m = re.match(r"CREATE TABLE IF NOT EXISTS (\w+)\s*\((.*)\)\s*ENGINE", stmt, re.S)
            if m:
                tables[m.group(1)] = [_column(c) for c in _top_level_split(m.group(2))]
    return tables


def _top_level_split(body: str) -> list[str]:
    parts, depth, current = [], 0, []
    for ch in body:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip() and not p.strip().upper().startswith(("INDEX", "PROJECTION", "CONSTRAINT"))]


def _column(definition: str) -> tuple[str, str]:
    name, _, rest = definition.partition(" ")
    return name.strip("`"), re.split(r"\s+(DEFAULT|MATERIALIZED|ALIAS|CODEC|COMMENT|TTL)\b", rest.strip())[0].strip()


def test_names_are_unique():
    for items in (catalog.TOPICS, catalog.OUTPUTS, catalog.JOBS):
        names = [i.name for i in items]
        assert len(names) == len(set(names)), names


def test_no_orphan_topics():
    """Every topic has a writer, and a reader unless it is a terminal record of what was rejected or late."""
    for topic in catalog.TOPICS:
        assert catalog.writers(topic.name), f"nobody writes topic {topic.name}"
        assert catalog.readers(topic.name) or topic.name in catalog.TERMINAL_TOPICS, f"nobody reads topic {topic.name}"


def test_jobs_outputs_and_producers_name_declared_topics():
    lake_only = {o.name for o in catalog.OUTPUTS if not o.kafka}
    for job in catalog.JOBS:
        assert set(job.inputs) <= TOPIC_NAMES, job.name
        assert set(job.outputs) <= TOPIC_NAMES | lake_only, job.name
    for output in catalog.OUTPUTS:
        if output.kafka:
            assert output.name in TOPIC_NAMES, f"output {output.name} has no topic"
            assert output.topic == catalog.topic(output.name)
        else:
            assert output.name not in TOPIC_NAMES, f"lake-only output {output.name} has a topic of the same name"
            assert output.topic is None
            # the sink loads outputs from their topics: a lake-only output lives in Iceberg and nowhere else
            assert output.iceberg and not output.clickhouse, output.name
            assert catalog.writers(output.name), f"no job declares that it writes {output.name}"
        assert output.event_time in {c.name for c in output.columns}, output.name
        assert set(output.partition_key) <= {c.name for c in output.columns}, output.name
        assert all(c.doc for c in output.columns), output.name
    for topics in catalog.PRODUCERS.values():
        assert set(topics) <= TOPIC_NAMES


def test_raw_topics_have_a_contract_with_their_key():
    for topic in catalog.TOPICS:
        if topic.schema:
            assert topic.schema_path.is_file(), topic.name
            assert topic.key in topic.schema_path.read_text(), f"{topic.name}: key {topic.key} not in its contract"


def test_each_job_has_its_driver_and_sql_under_its_one_name():
    for job in catalog.JOBS:
        driver = importlib.import_module(job.module)
        assert job_file(job.name) == Path(driver.__file__).resolve()
        assert job_file(job.name).parent == JOBS_DIR
        assert driver.JOB_NAME == job.name, f"{job.module} sets pipeline.name {driver.JOB_NAME!r}, not {job.name!r}"
        assert callable(driver.main)
        for sql in job.sql:
            text = (SQL_DIR / sql).read_text()
            for topic in re.findall(r"'topic' = '(\w+)'", text):
                assert topic in set(job.inputs) | set(job.outputs), f"{sql} uses topic {topic}, not declared for {job.name}"


def test_every_sink_output_has_a_migration_with_the_same_columns():
    tables = created_tables()
    for output in catalog.sink_outputs():
        assert output.table in tables, f"the sink loads {output.name} but no migration creates table {output.table}"
        assert tables[output.table] == [(c.name, c.type) for c in output.columns], f"migration of {output.table} differs from its catalog columns"


def test_readme_tables_are_current():
    assert catalog.markdown() in (ROOT / "README.md").read_text(), "README pipeline tables are stale: run `twitch-pipeline settings --write`"


def test_unknown_names_are_clear_errors():
    with pytest.raises(KeyError, match="no topic named 'nope'.*known: game_streams"):
        catalog.topic("nope")


def test_chat_bronze_is_a_lake_only_output_with_its_columns():
    bronze = catalog.output("chat_bronze")
    assert (bronze.kafka, bronze.clickhouse, bronze.iceberg) == (False, False, True)
    assert bronze.partition_key == ("topic", "kafka_partition", "kafka_offset") and bronze.event_time == "ingest_ts"
    assert catalog.writers("chat_bronze") == ["chat_enrich"]
    # the columns are the Iceberg table's, as chat_enrich.sql creates it
    ddl = re.search(r"chat_bronze \((.*?)\) PARTITIONED", (SQL_DIR / "chat_enrich.sql").read_text(), re.S).group(1)
    assert [c.split()[0] for c in _top_level_split(ddl)] == [c.name for c in bronze.columns]
    assert "| `chat_bronze` | — | `lake.chat_bronze` | `ingest_ts` | topic, kafka_partition, kafka_offset |" in catalog.markdown()


def test_the_contract_spec_the_jobs_check_comes_from_each_raw_topics_json_schema():
    spec = dict(entry.split(":") for entry in catalog.topic("game_streams").contract_spec().split(","))
    assert spec["event_id"] == "string" and spec["viewer_count"] == "integer" and spec["tags"] == "array"
    assert spec["started_at"] == "string"  # a $ref to the timestamp definition
    assert dict(e.split(":") for e in catalog.topic("twitch_users").contract_spec().split(","))["broadcaster_type"] == "string"  # an enum
    assert "reply_parent_message_id:string|null" in catalog.topic("chat_messages").contract_spec()
    assert catalog.topic("game_streams_enriched").contract_spec() == ""  # no schema: nothing to check
