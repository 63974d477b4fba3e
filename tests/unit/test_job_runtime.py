"""SQL parameters shared by the job drivers."""

import re

import pytest

from flink_jobs.runtime import SQL_DIR, interval_literal, load_sql, sql_params
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
    assert streaming["txn_prefix"] != bounded["txn_prefix"]


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
