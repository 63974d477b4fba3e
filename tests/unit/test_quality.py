"""Data quality checks: parsing checks.yaml against the catalog, the SQL each check becomes, the Arrow evaluation,
the report. The same checks run for real against ClickHouse and Iceberg in tests/integration/test_quality.py."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pyarrow as pa
import pytest

from connectors import catalog
from connectors.quality import CheckResult, QualityConfigError, failed, format_report, load_checks
from connectors.quality.clickhouse_store import counts_sql, examples_sql, failing, literal
from connectors.quality.lake_store import duplicates
from connectors.quality.lake_store import failing as lake_failing
from connectors.quality.reconcile import _event_day, reconciliation_result
from connectors.quality.results import freshness_outcome
from connectors.quality.spec import Check, parse_checks


def one(table: dict) -> list[Check]:
    return parse_checks({"tables": [table]})


# ------------------------------------------------------------------------------------------------ checks.yaml


def test_declared_checks_parse_and_cover_every_output_key():
    checks = load_checks()
    tables = {c.table for c in checks}
    assert {"game_streams_enriched", "game_minute_stats", "late_events", "chat_bronze", "chat_silver", "chat_minute_stats"} <= tables
    for output in catalog.OUTPUTS:
        if output.name in tables and output.partition_key:
            unique = [c for c in checks if c.table == output.name and c.kind == "unique"]
            assert [c.columns for c in unique] == [output.partition_key], f"{output.name}: unique on the catalog's partition_key"
    names = [(c.table, c.name) for c in checks]
    assert len(names) == len(set(names)), "every check has its own name within its table"


def test_stream_and_chat_checks_the_issue_asks_for():
    by_name = {(c.table, c.name): c for c in load_checks()}
    for key in ("event_id", "stream_id", "user_id", "game_id", "data_retrieved_at"):
        assert ("game_streams_enriched", f"not_null({key})") in by_name
    for key in ("event_id", "stream_id", "user_id"):
        assert ("game_streams_enriched", f"not_empty_string({key})") in by_name
    assert ("chat_bronze", "unique(topic, kafka_partition, kafka_offset)") in by_name
    assert by_name[("chat_bronze", "accepted_values(parse_status in {OK, PARSE_ERROR, SCHEMA_ERROR})")].values == ("OK", "PARSE_ERROR", "SCHEMA_ERROR")
    sentiment = by_name[("chat_silver", "accepted_range(sentiment in [-1, 1])")]
    assert (sentiment.min_value, sentiment.max_value, sentiment.inclusive) == (-1, 1, True)
    assert ("chat_silver", "unique(message_id)") in by_name
    assert ("chat_minute_stats", "unique(window_start, channel)") in by_name


def test_key_event_time_and_stores_come_from_the_catalog():
    (check,) = one({"name": "game_minute_stats", "tests": ["unique"]})
    out = catalog.output("game_minute_stats")
    assert check.columns == out.partition_key and check.event_time == out.event_time
    assert check.stores == ("clickhouse", "iceberg")
    (late,) = one({"name": "late_events", "tests": ["unique"]})
    assert late.stores == ("clickhouse",)  # not kept in the lake
    (outside,) = one({"name": "not_in_catalog", "key": ["k"], "tests": ["unique"]})
    assert outside.stores == ("clickhouse", "iceberg") and outside.columns == ("k",)


@pytest.mark.parametrize(("table", "message"), [
    ({"name": "t", "columns": [{"name": "c", "tests": ["not_nul"]}]}, "unknown column test 'not_nul'"),
    ({"name": "t", "columns": [{"name": "c", "tests": [{"accepted_range": {}}]}]}, "needs min_value, max_value or both"),
    ({"name": "t", "columns": [{"name": "c", "tests": [{"accepted_range": {"min_value": 2, "max_value": 1}}]}]}, "above max_value"),
    ({"name": "t", "columns": [{"name": "c", "tests": [{"accepted_values": {"values": []}}]}]}, "non-empty list"),
    ({"name": "t", "columns": [{"name": "c", "tests": [{"relationships": {"to": "p"}}]}]}, "needs `to`"),
    ({"name": "t", "columns": [{"name": "c", "tests": [{"not_null": {"recent_s": 60}}]}]}, "recent_s needs the table's event_time"),
    ({"name": "t", "columns": [{"name": "c", "tests": [{"not_null": {"bogus": 1}}]}]}, "unknown arguments ['bogus']"),
    ({"name": "t", "tests": ["unique"]}, "has no key"),
    ({"name": "t", "tests": ["freshness"]}, "has no event_time"),
    ({"name": "game_minute_stats", "key": ["game_id"], "tests": ["unique"]}, "contradicts connectors/catalog.py"),
    ({"name": "t", "stores": ["postgres"]}, "unknown stores"),
    ({"name": "t", "colums": []}, "unknown keys ['colums']"),
    ({"name": "t", "key": "k", "tests": ["unique"], "columns": [{"name": "k", "tests": ["unique"]}]}, "checks declared twice: unique(k)"),
])
def test_bad_declarations_fail_naming_the_place(table, message):
    with pytest.raises(QualityConfigError, match="table t|table game_minute_stats") as err:
        one(table)
    assert message in str(err.value)


def test_unknown_table_filter_lists_the_known_ones():
    with pytest.raises(LookupError, match="no checks declared for nope.*game_streams_enriched"):
        load_checks(tables=["nope"])
    assert {c.table for c in load_checks(tables=["chat_silver"])} == {"chat_silver"}


# ------------------------------------------------------------------------------------------------ ClickHouse SQL


def test_unique_counts_duplicates_without_final():
    (check,) = one({"name": "chat_bronze", "key": ["topic", "kafka_partition", "kafka_offset"], "tests": ["unique"]})
    sql = counts_sql(check, {})
    assert "FINAL" not in sql.upper() and "FINAL" not in examples_sql(check, {}).upper()
    assert "GROUP BY `topic`, `kafka_partition`, `kafka_offset` HAVING count() > 1" in sql
    assert examples_sql(check, {}).endswith("ORDER BY copies DESC, `topic`, `kafka_partition`, `kafka_offset` LIMIT 5")


def test_not_null_and_not_empty_string_in_clickhouse():
    (not_null, not_empty) = one({"name": "t", "columns": [{"name": "k", "tests": ["not_null", "not_empty_string"]}]})
    assert failing(not_null, {"k": "Nullable(String)"}) == "isNull(`k`)"
    assert failing(not_null, {"k": "LowCardinality(Nullable(String))"}) == "isNull(`k`)"
    assert failing(not_null, {"k": "String"}) == "false"  # cannot hold NULL: the sink dead-letters such records
    assert failing(not_empty, {"k": "LowCardinality(String)"}) == "trimBoth(`k`) = ''"
    with pytest.raises(LookupError, match="needs a string column; k is Int32"):
        failing(not_empty, {"k": "Int32"})


def test_row_check_predicates():
    checks = {c.kind: c for c in one({"name": "t", "event_time": "ts", "columns": [
        {"name": "s", "tests": [{"accepted_range": {"min_value": -1, "max_value": 1, "recent_s": 3600}}]},
        {"name": "v", "tests": [{"accepted_values": {"values": ["OK", "it's"]}}]},
        {"name": "g", "tests": [{"relationships": {"to": "parent", "field": "id"}}]},
    ]})}
    assert failing(checks["accepted_range"], {}) == "`s` IS NOT NULL AND NOT (`s` >= -1 AND `s` <= 1)"
    assert failing(checks["accepted_values"], {}) == "`v` NOT IN ('OK', 'it\\'s')"
    assert failing(checks["relationships"], {}) == "`g` IS NOT NULL AND `g` NOT IN (SELECT `id` FROM `parent`)"
    sql = counts_sql(checks["accepted_range"], {})
    assert sql.endswith("FROM `t` WHERE `ts` >= now64(3) - toIntervalSecond(3600)")
    assert examples_sql(checks["accepted_range"], {"s": "Float64"}).startswith(
        "SELECT `s` FROM `t` WHERE `ts` >= now64(3) - toIntervalSecond(3600) AND (`s` IS NOT NULL AND NOT")
    on_day = dataclasses.replace(checks["accepted_range"], recent_s=None, day=dt.date(2026, 11, 29))
    assert counts_sql(on_day, {}).endswith(
        "WHERE `ts` >= toDateTime64('2026-11-29 00:00:00', 3, 'UTC') AND `ts` < toDateTime64('2026-11-30 00:00:00', 3, 'UTC')")
    (exclusive,) = one({"name": "t", "columns": [{"name": "x", "tests": [{"accepted_range": {"min_value": 0, "inclusive": False}}]}]})
    assert failing(exclusive, {}) == "`x` IS NOT NULL AND NOT (`x` > 0)"
    assert literal(True) == "true" and literal(0.5) == "0.5" and literal("a\\b") == "'a\\\\b'"


# ------------------------------------------------------------------------------------------------ Arrow evaluation


def test_lake_predicates_match_the_sql_semantics():
    not_null, not_empty, in_range, values = one({"name": "t", "columns": [
        {"name": "c", "tests": ["not_null", "not_empty_string", {"accepted_range": {"min_value": -1, "max_value": 1}}, {"accepted_values": {"values": ["a", "b"]}}]},
    ]})
    strings = pa.chunked_array([["a", "", None, "z"]])
    assert lake_failing(not_null, strings).to_pylist() == [False, False, True, False]
    assert lake_failing(not_empty, pa.chunked_array([["a", "", None, " \t"]])).to_pylist() == [False, True, False, True]
    assert lake_failing(values, strings).to_pylist() == [False, True, False, True]  # NULL passes, as in SQL
    numbers = pa.chunked_array([[0.5, 2.0, None, float("nan"), -1.0]])
    assert lake_failing(in_range, numbers).to_pylist() == [False, True, False, True, False]
    (rel,) = one({"name": "t", "columns": [{"name": "c", "tests": [{"relationships": {"to": "p", "field": "id"}}]}]})
    assert lake_failing(rel, strings, pa.array(["a", ""])).to_pylist() == [False, False, False, True]


def test_lake_duplicates_are_key_values_with_their_copies():
    data = pa.table({"p": [0, 0, 1, 0, 0], "o": [5, 5, 5, 6, 5]})
    assert duplicates(data, ("p", "o")).to_pylist() == [{"p": 0, "o": 5, "copies": 3}]


def test_freshness_is_one_failure_when_stale_or_empty():
    now = dt.datetime(2026, 11, 29, 12, tzinfo=dt.timezone.utc)
    assert freshness_outcome(3, now - dt.timedelta(seconds=30), now, 600).failures == 0
    stale = freshness_outcome(3, (now - dt.timedelta(seconds=900)).replace(tzinfo=None), now, 600)
    assert stale.failures == 1 and stale.examples == [{"newest": "2026-11-29T11:45:00+00:00", "age_s": 900.0, "slo_s": 600}]
    assert freshness_outcome(0, None, now, 600).failures == 1


# ------------------------------------------------------------------------------------------------ report


def test_report_shows_each_failure_with_examples_and_a_summary():
    run_at = dt.datetime(2026, 11, 29, tzinfo=dt.timezone.utc)
    results = [
        CheckResult("not_null(message_id)", "not_null", "chat_silver", "iceberg", "fail", 10, 1, [{"message_id": None, "channel": "a"}], run_at=run_at),
        CheckResult("unique(message_id)", "unique", "chat_silver", "clickhouse", "pass", 10, 0, run_at=run_at),
        CheckResult("unique(message_id)", "unique", "chat_bronze", "clickhouse", "skipped", 0, 0, detail="table chat_bronze missing in ClickHouse", run_at=run_at),
        CheckResult("freshness(sent_at)", "freshness", "chat_silver", "clickhouse", "error", 0, 0, detail="Code: 60. no table", run_at=run_at),
    ]
    report = format_report(results)
    assert "FAIL iceberg chat_silver not_null(message_id): 1 of 10 rows" in report
    assert "    message_id  channel" in report and "NULL  a" in report
    assert "ERROR clickhouse chat_silver freshness(sent_at): Code: 60. no table" in report
    assert report.endswith("4 checks: 1 passed, 1 failed, 1 errors, 1 skipped")
    assert [r.status for r in failed(results)] == ["fail", "error"]
    assert results[0].to_dict()["run_at"] == "2026-11-29T00:00:00+00:00"
    assert [CheckResult.from_dict(json.loads(json.dumps(r.to_dict()))) for r in results] == results


def test_event_day_of_a_record():
    assert _event_day(b'{"window_end": "2026-11-21T11:00:00Z"}', "window_end") == "2026-11-21"
    assert _event_day(b'{"window_end": "2026-11-21T23:30:00-02:00"}', "window_end") == "2026-11-22"
    assert _event_day(b'{"other": 1}', "window_end") is None
    assert _event_day(b"not json", "window_end") is None


def test_reconciliation_as_a_check_result():
    counts = {"output": "top_streams", "day": "2026-11-29", "event_time": "window_end", "kafka": 10, "kafka_complete": False,
              "clickhouse": 12, "iceberg": 10, "match": False, "detail": "kafka retention has deleted records that may belong to the day"}
    result = reconciliation_result(counts)
    assert (result.check, result.table, result.store, result.status, result.rows_tested, result.failures) == (
        "reconcile(window_end on 2026-11-29)", "top_streams", "clickhouse+iceberg", "fail", 12, 2)
    assert result.detail == "kafka 10, clickhouse 12, iceberg 10; kafka retention has deleted records that may belong to the day"
    assert reconciliation_result({**counts, "kafka_complete": True, "clickhouse": 10, "match": True}).status == "pass"
    stamped = reconciliation_result(counts, run_at=dt.datetime(2026, 11, 29, tzinfo=dt.timezone.utc), run_id="manual__1")
    assert (stamped.run_at.day, stamped.run_id) == (29, "manual__1")
