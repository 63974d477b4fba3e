"""SQL parameters shared by the job drivers."""

import re

import pytest

from connectors import catalog
from flink_jobs.runtime import SQL_DIR, checkpoint_interval_s, interval_literal, load_sql, sql_params
from twitch_pipeline.settings import Settings


@pytest.mark.parametrize(("seconds", "literal"), [
    (0, "INTERVAL '0 00:00:00.000' DAY TO SECOND(3)"),
    (30, "INTERVAL '0 00:00:30.000' DAY TO SECOND(3)"),
    (300, "INTERVAL '0 00:05:00.000' DAY TO SECOND(3)"),  # three digits of seconds: SECOND(2) would reject it
    (2.5, "INTERVAL '0 00:00:02.500' DAY TO SECOND(3)"),
    (90061.001, "INTERVAL '1 01:01:01.001' DAY TO SECOND(3)"),
])
def test_interval_literal(seconds, literal):
    assert interval_literal(seconds) == literal


def test_watermark_lateness_is_passed_as_an_interval():
    assert sql_params(Settings(watermark_lateness_s=120), "job", bounded=False)["lateness"] == "INTERVAL '0 00:02:00.000' DAY TO SECOND(3)"


def test_bounded_runs_neither_share_offsets_nor_transactions_with_the_streaming_job():
    streaming, bounded = (sql_params(Settings(), "job", bounded=b) for b in (False, True))
    assert streaming["group_id"] != bounded["group_id"]
    prefix = "'sink.transactional-id-prefix' = '"
    assert streaming["kafka_sink:late_events"].split(prefix)[1] != bounded["kafka_sink:late_events"].split(prefix)[1]


def test_kafka_sources_read_committed_from_the_start_when_bounded_and_from_the_group_offsets_when_streaming():
    bounded = options(sql_params(Settings(), "job", bounded=True)["kafka_source:game_streams"])
    streaming = options(sql_params(Settings(), "job", bounded=False)["kafka_source:game_streams"])
    assert bounded["topic"] == "game_streams" and bounded["properties.isolation.level"] == "read_committed"
    assert (bounded["scan.startup.mode"], bounded["scan.bounded.mode"]) == ("earliest-offset", "latest-offset")
    assert (streaming["scan.startup.mode"], streaming["scan.bounded.mode"]) == ("group-offsets", "unbounded")
    assert streaming["properties.group.id"] == "twitch-pipeline-job" != bounded["properties.group.id"]


def test_kafka_sinks_are_exactly_once_keyed_by_the_catalog_key_each_with_its_own_transactional_prefix():
    params = sql_params(Settings(), "job", bounded=False)
    sinks = {t.name: options(params[f"kafka_sink:{t.name}"]) for t in catalog.TOPICS}
    assert all(s["sink.delivery-guarantee"] == "exactly-once" for s in sinks.values())
    assert len({s["sink.transactional-id-prefix"] for s in sinks.values()}) == len(sinks)
    assert sinks["game_streams_enriched"]["key.fields"] == "event_id" and sinks["game_streams_enriched"]["key.format"] == "raw"
    assert "key.fields" not in sinks["late_events"]
    # a timestamp key has no raw form
    assert (sinks["top_streams"]["key.fields"], sinks["top_streams"]["key.format"]) == ("window_start", "json")


def test_each_jobs_sql_reads_its_inputs_and_writes_its_outputs_through_the_topic_fragments():
    for job in catalog.JOBS:
        text = "".join((SQL_DIR / name).read_text() for name in job.sql)
        assert set(re.findall(r"\$\{kafka_source:(\w+)\}", text)) <= set(job.inputs), job.name
        assert set(re.findall(r"\$\{kafka_sink:(\w+)\}", text)) <= set(job.outputs), job.name
        assert "'connector' = 'kafka'" not in text, f"{job.name}: declare Kafka tables with the ${{kafka_source:...}}/${{kafka_sink:...}} fragments"
    # runtime.start_job declares them for every job: only the terminal topics, which any job may write
    side_outputs = (SQL_DIR / "side_outputs.sql").read_text()
    assert set(re.findall(r"\$\{kafka_sink:(\w+)\}", side_outputs)) <= set(catalog.TERMINAL_TOPICS)


def test_a_fragment_of_an_unknown_topic_is_a_clear_error(tmp_path):
    script = tmp_path / "typo.sql"
    script.write_text("CREATE TEMPORARY TABLE t (x INT) WITH (${kafka_sink:late_event});")
    with pytest.raises(KeyError, match=r"typo.sql uses \$\{kafka_sink:late_event\}"):
        load_sql(script, sql_params(Settings(), "job", bounded=True))


def test_sql_is_loaded_by_name_or_from_a_path(tmp_path):
    variant = tmp_path / "variant.sql"
    variant.write_text("-- a benchmark's variant\nSELECT ${x};\n")
    assert load_sql(variant, {"x": "1"}) == ["SELECT 1"]
    assert load_sql("enrich_streams", enrich_sql_params())[0].startswith("CREATE TEMPORARY FUNCTION")


def test_enrichment_parses_each_record_once():
    """Flink 2.0's JSON_VALUE/JSON_QUERY parse the whole document per call: the job reads fields from one parse."""
    statements = load_sql("enrich_streams", enrich_sql_params())
    assert not [s for s in statements if re.search(r"\bJSON_(VALUE|QUERY)\s*\(|\bIS\s+(NOT\s+)?JSON\b", s, re.IGNORECASE)]


def test_functions_the_sql_registers_are_built_from_jvm_sources(repo_root):
    """`make jars` compiles jvm/src into the jar Flink's lib/ holds; a class named in SQL must be among its sources."""
    classes = re.findall(r"CREATE TEMPORARY FUNCTION \w+ AS '([\w.]+)' LANGUAGE JAVA", (SQL_DIR / "enrich_streams.sql").read_text())
    assert classes
    for name in classes:
        assert (repo_root / "jvm/src/main/java" / (name.replace(".", "/") + ".java")).is_file(), name


def enrich_sql_params() -> dict[str, str]:
    return {**sql_params(Settings(), "enrich_streams", bounded=True), "heartbeat_keys": "'k0'"}


def options(fragment: str) -> dict[str, str]:
    return dict(re.findall(r"'([^']+)' = '([^']*)'", fragment))


def test_only_the_jobs_writing_minute_windows_checkpoint_at_the_window_interval():
    settings = Settings(checkpoint_interval_s=1.0, window_checkpoint_interval_s=5.0)
    intervals = {job.name: checkpoint_interval_s(settings, job.name) for job in catalog.streaming_jobs()}
    assert intervals == {"enrich_streams": 1.0, "aggregate_streams": 5.0, "chat_enrich": 1.0, "chat_aggregate": 5.0}
    assert checkpoint_interval_s(settings, "my_own_driver") == 1.0, "a job not in the catalog gets the shared interval"
