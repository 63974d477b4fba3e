"""The data quality checks against the real embedded ClickHouse and a real Iceberg catalog (pyiceberg), and the
per-day reconciliation against a real Kafka broker: clean data passes; a NULL key, a sentiment of 2, a duplicated
offset and a duplicated key are each caught with the right example rows; `twitch-pipeline check` exits 1 then."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Iterator

import pyarrow as pa
import pytest

from connectors.clickhouse import clickhouse_client
from connectors.iceberg import load_catalog
from connectors.migrations import apply_migrations
from connectors.quality import RESULTS_TABLE, failed, reconcile_counts, run_checks, write_results
from connectors.quality.spec import parse_checks
from tests.cli import run_cli
from twitch_pipeline.platform.lifecycle import running
from twitch_pipeline.settings import Settings

pytestmark = pytest.mark.integration

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
UTC_US = pa.timestamp("us", tz="UTC")
# Until the chat job's migration lands, the test creates the chat tables it checks with the columns the checks read.
CHAT_SILVER_DDL = ("CREATE TABLE IF NOT EXISTS chat_silver (message_id String, channel String, sent_at DateTime64(3, 'UTC'), sentiment Float64) "
                   "ENGINE = ReplacingMergeTree ORDER BY message_id")
SILVER = pa.schema([("message_id", pa.string()), ("channel", pa.string()), ("sent_at", UTC_US), ("sentiment", pa.float64())])
BRONZE = pa.schema([("topic", pa.string()), ("kafka_partition", pa.int32()), ("kafka_offset", pa.int64()), ("ingest_ts", UTC_US),
                    ("parse_status", pa.string())])
ENRICHED = pa.schema([("event_id", pa.string()), ("stream_id", pa.string()), ("user_id", pa.string()), ("game_id", pa.string()),
                      ("viewer_count", pa.int32()), ("data_retrieved_at", UTC_US)])
MINUTES = pa.schema([("window_start", UTC_US), ("window_end", UTC_US), ("game_id", pa.string()), ("viewers_sum", pa.int64()),
                     ("viewers_max", pa.int32()), ("live_streams", pa.int64())])
MINUTE_COLUMNS = ["window_start", "window_end", "game_id", "viewers_sum", "viewers_max", "live_streams", "viewers_avg", "new_streams"]
TABLES = ["game_streams_enriched", "game_minute_stats", "chat_bronze", "chat_silver"]


def minute(end: dt.datetime, game_id: str) -> tuple:
    """A game_minute_stats row (the lake's columns first, then ClickHouse's two more)."""
    return (end - dt.timedelta(minutes=1), end, game_id, 10, 10, 1, 10.0, 0)


@pytest.fixture(scope="module")
def stores(make_settings, kafka) -> Iterator[Settings]:
    """ClickHouse and the Iceberg catalog on their own run directory, next to the session's Kafka broker."""
    settings = dataclasses.replace(make_settings(), kafka_port=kafka.kafka_port, kafka_controller_port=kafka.kafka_controller_port)
    with running(settings, ("iceberg", "clickhouse")):
        yield settings


def _world(stores: Settings, name: str) -> Settings:
    """A ClickHouse database and an Iceberg namespace of their own, with clean rows in every checked table."""
    # The rows are stamped NOW, when the module was collected: in a whole suite that may be many minutes before
    # these tests run, so the freshness SLO is a day here (freshness itself is unit-tested against exact ages).
    settings = dataclasses.replace(stores, clickhouse_database=name, iceberg_namespace=name, quality_freshness_slo_s=86400.0)
    apply_migrations(settings)
    with clickhouse_client(settings) as ch:
        ch.command(CHAT_SILVER_DDL)
        ch.insert("chat_silver", [[f"m{i}", "chan", NOW, i / 4 - 0.5] for i in range(5)], column_names=["message_id", "channel", "sent_at", "sentiment"])
        ch.insert("game_streams_enriched", [[f"e{i}", f"s{i}", f"u{i}", "g1", 10 * i, NOW, NOW] for i in range(4)],
                  column_names=["event_id", "stream_id", "user_id", "game_id", "viewer_count", "data_retrieved_at", "started_at"])
        # A game seen a month ago only: outside the relationship's 14 days, so not checked against the enriched rows.
        ch.insert("game_minute_stats", [minute(NOW, "g1"), minute(NOW - dt.timedelta(days=30), "g-old")], column_names=MINUTE_COLUMNS)
    catalog = load_catalog(settings)
    catalog.create_namespace_if_not_exists(name)
    _append(settings, "chat_silver", SILVER, [(f"m{i}", "chan", NOW, i / 4 - 0.5) for i in range(5)])
    _append(settings, "chat_bronze", BRONZE, [("chat_messages", p, o, NOW, ("OK", "PARSE_ERROR", "SCHEMA_ERROR")[o % 3]) for p in (0, 1) for o in range(3)])
    _append(settings, "game_streams_enriched", ENRICHED, [(f"e{i}", f"s{i}", f"u{i}", "g1", 10 * i, NOW) for i in range(4)])
    _append(settings, "game_minute_stats", MINUTES, [minute(NOW, "g1")[:6], minute(NOW - dt.timedelta(days=30), "g-old")[:6]])
    return settings


def _append(settings: Settings, table: str, schema: pa.Schema, rows: list[tuple]) -> None:
    catalog = load_catalog(settings)
    name = f"{settings.iceberg_namespace}.{table}"
    lake = catalog.load_table(name) if catalog.table_exists(name) else catalog.create_table(name, schema=schema)
    lake.append(pa.Table.from_pylist([dict(zip(schema.names, row)) for row in rows], schema=schema))


@pytest.fixture(scope="module")
def clean(stores) -> Settings:
    return _world(stores, "quality_clean")


@pytest.fixture(scope="module")
def defects(stores) -> Settings:
    """The clean world plus one planted defect per check the issue names, each in ClickHouse or the lake."""
    settings = _world(stores, "quality_defects")
    with clickhouse_client(settings) as ch:
        # Separate inserts: one insert's rows would be collapsed by the ReplacingMergeTree as the part is written.
        ch.insert("chat_silver", [["m1", "chan", NOW, 0.0]], column_names=["message_id", "channel", "sent_at", "sentiment"])
        ch.insert("chat_silver", [["m9", "chan", NOW, 2.0]], column_names=["message_id", "channel", "sent_at", "sentiment"])
        # A String key cannot hold NULL in ClickHouse (the sink dead-letters it): a lost key there is ''.
        ch.insert("game_streams_enriched", [["e9", "s9", "", "g1", 1, NOW, NOW]],
                  column_names=["event_id", "stream_id", "user_id", "game_id", "viewer_count", "data_retrieved_at", "started_at"])
    _append(settings, "chat_silver", SILVER, [(None, "chan", NOW, 0.1), ("m7", "chan", NOW, 2.0)])
    with clickhouse_client(settings) as ch:
        ch.insert("game_minute_stats", [minute(NOW - dt.timedelta(minutes=1), "g404")], column_names=MINUTE_COLUMNS)
    _append(settings, "game_minute_stats", MINUTES, [minute(NOW - dt.timedelta(minutes=1), "g404")[:6]])
    _append(settings, "chat_bronze", BRONZE, [("chat_messages", 1, 2, NOW, "OK"), ("chat_messages", 1, 7, NOW, "BOGUS")])
    return settings


def test_clean_data_passes_in_both_stores(clean):
    results = run_checks(clean, tables=TABLES)
    assert not failed(results), [(r.store, r.table, r.check, r.status, r.detail, r.examples) for r in failed(results)]
    ran = {(r.store, r.table) for r in results if r.status == "pass"}
    assert ran == {(store, table) for store in ("clickhouse", "iceberg") for table in ("game_streams_enriched", "game_minute_stats", "chat_silver")} | {
        ("iceberg", "chat_bronze")}
    silver = {(r.store, r.check): r for r in results if r.table == "chat_silver"}
    assert silver[("clickhouse", "unique(message_id)")].rows_tested == 5 == silver[("iceberg", "unique(message_id)")].rows_tested


def test_tables_that_do_not_exist_yet_are_skipped(clean):
    checks = parse_checks({"tables": [
        {"name": "not_there_yet", "key": ["k"], "tests": ["unique"]},
        {"name": "chat_silver", "columns": [{"name": "channel", "tests": [{"relationships": {"to": "not_there_yet", "field": "k"}}]}]},
    ]})
    results = run_checks(clean, checks=checks)
    assert [(r.store, r.table, r.status, r.detail) for r in results] == [
        ("clickhouse", "not_there_yet", "skipped", "table not_there_yet missing in ClickHouse"),
        ("iceberg", "not_there_yet", "skipped", "table quality_clean.not_there_yet missing in Iceberg"),
        ("clickhouse", "chat_silver", "skipped", "table not_there_yet missing in ClickHouse"),
        ("iceberg", "chat_silver", "skipped", "table quality_clean.not_there_yet missing in Iceberg"),
    ]


def test_planted_defects_are_caught_with_example_rows(defects):
    results = {(r.store, r.table, r.check): r for r in run_checks(defects, tables=TABLES)}
    bad = {k for k, r in results.items() if r.status != "pass"}
    expected = {
        ("clickhouse", "chat_silver", "unique(message_id)"): [{"message_id": "m1", "copies": 2}],
        ("clickhouse", "chat_silver", "accepted_range(sentiment in [-1, 1])"): [{"message_id": "m9", "sentiment": 2.0}],
        ("clickhouse", "game_streams_enriched", "not_empty_string(user_id)"): [{"event_id": "e9", "user_id": ""}],
        ("iceberg", "chat_silver", "not_null(message_id)"): [{"message_id": None}],
        **{(store, "game_minute_stats", "relationships(game_id -> game_streams_enriched, last 14d)"):
           [{"window_start": (NOW - dt.timedelta(minutes=2)).isoformat(), "game_id": "g404"}] for store in ("clickhouse", "iceberg")},
        ("iceberg", "chat_silver", "accepted_range(sentiment in [-1, 1])"): [{"message_id": "m7", "sentiment": 2.0}],
        ("iceberg", "chat_bronze", "unique(topic, kafka_partition, kafka_offset)"):
            [{"topic": "chat_messages", "kafka_partition": 1, "kafka_offset": 2, "copies": 2}],
        ("iceberg", "chat_bronze", "accepted_values(parse_status in {OK, PARSE_ERROR, SCHEMA_ERROR})"):
            [{"topic": "chat_messages", "kafka_partition": 1, "kafka_offset": 7, "parse_status": "BOGUS"}],
    }
    assert bad == set(expected)
    for key, examples in expected.items():
        assert results[key].status == "fail" and results[key].failures == 1 and results[key].examples == examples, key


def test_stale_tables_fail_freshness_with_their_newest_row(clean):
    stale = run_checks(dataclasses.replace(clean, quality_freshness_slo_s=1.0), tables=["chat_silver"])
    freshness = [r for r in stale if r.kind == "freshness"]
    assert [(r.store, r.status, r.rows_tested, r.failures) for r in freshness] == [("clickhouse", "fail", 0, 1), ("iceberg", "fail", 0, 1)]
    assert all(r.examples[0]["newest"] == NOW.isoformat() and r.examples[0]["age_s"] > 1 for r in freshness)


def test_a_day_scopes_every_check_but_freshness(defects):
    yesterday = run_checks(defects, tables=["chat_silver"], day=NOW.date() - dt.timedelta(days=1))
    assert {(r.kind, r.status, r.rows_tested) for r in yesterday} == {
        ("freshness", "pass", 7), *((k, "pass", 0) for k in ("unique", "not_null", "not_empty_string", "accepted_range"))}
    today = run_checks(defects, tables=["chat_silver"], day=NOW.date())
    assert [(r.store, r.check) for r in failed(today)] == [("clickhouse", "unique(message_id)"), ("iceberg", "not_null(message_id)"),
                                                           ("clickhouse", "accepted_range(sentiment in [-1, 1])"), ("iceberg", "accepted_range(sentiment in [-1, 1])")]


def test_cli_reports_failures_exits_1_and_records_results(defects, clean):
    failing = run_cli(defects, "check", "--table", "chat_silver", "--table", "chat_bronze")
    assert failing.returncode == 1, failing.stderr
    assert "FAIL clickhouse chat_silver accepted_range(sentiment in [-1, 1]): 1 of 7 rows" in failing.stdout
    assert "FAIL iceberg chat_bronze unique(topic, kafka_partition, kafka_offset): 1 key values repeated among 8 rows" in failing.stdout
    assert failing.stdout.rstrip().endswith("20 checks: 14 passed, 6 failed, 0 errors, 0 skipped")

    passing = run_cli(clean, "check", "--table", "chat_silver", "--store", "iceberg", "--json")
    assert passing.returncode == 0, passing.stdout + passing.stderr
    assert {r["status"] for r in json.loads(passing.stdout)} == {"pass"}

    with clickhouse_client(defects) as ch:
        recorded = ch.query(f"SELECT status, count() FROM {RESULTS_TABLE} WHERE table_name = 'chat_silver' GROUP BY status ORDER BY status").result_rows
        latest = ch.query("SELECT examples FROM quality_latest WHERE check_name = 'unique(message_id)' AND store = 'clickhouse'").result_rows
    assert recorded == [("fail", 4), ("pass", 12)]
    assert json.loads(latest[0][0]) == [{"message_id": "m1", "copies": 2}]


def test_unreachable_store_is_an_error_not_a_pass(clean):
    gone = dataclasses.replace(clean, clickhouse_port=1)
    results = run_checks(gone, tables=["chat_silver"], stores=("clickhouse",))
    assert results and {r.status for r in results} == {"error"} and all("cannot open clickhouse" in r.detail for r in results)
    with pytest.raises(Exception):  # noqa: B017 - whichever the client raises; the CLI turns it into a warning
        write_results(gone, results)


def test_reconcile_counts_per_day_in_kafka_clickhouse_and_iceberg(stores):
    from confluent_kafka import Producer

    from connectors.kafka import client_config
    from connectors.topics import heartbeat_keys

    settings = dataclasses.replace(stores, clickhouse_database="quality_reconcile", iceberg_namespace="quality_reconcile")
    apply_migrations(settings)
    load_catalog(settings).create_namespace_if_not_exists(settings.iceberg_namespace)
    # A day no other test writes (the broker is the session's), within the tables' TTL (older rows are dropped at insert).
    day = NOW.date() - dt.timedelta(days=45)
    start = dt.datetime.combine(day, dt.time(), dt.timezone.utc)
    ends = [start + dt.timedelta(minutes=1), start + dt.timedelta(hours=12), start + dt.timedelta(days=1, minutes=1)]  # the last: next day
    rows = [dict(zip(MINUTE_COLUMNS, minute(e, f"g{i}"))) for i, e in enumerate(ends)]

    producer = Producer(client_config(settings))
    for row in rows:
        payload = {**row, "window_start": row["window_start"].isoformat().replace("+00:00", "Z"), "window_end": row["window_end"].isoformat().replace("+00:00", "Z")}
        producer.produce("game_minute_stats", json.dumps(payload).encode(), key=row["game_id"].encode())
    producer.produce("game_minute_stats", json.dumps({"window_end": ends[0].isoformat()}).encode(), key=heartbeat_keys(1)[0].encode())
    assert producer.flush(30) == 0
    with clickhouse_client(settings) as ch:
        ch.insert("game_minute_stats", [list(r.values()) for r in rows], column_names=MINUTE_COLUMNS)
    _append(settings, "game_minute_stats", MINUTES, [tuple(r.values())[:6] for r in rows])

    counts = reconcile_counts(settings, "game_minute_stats", day)
    assert {k: counts[k] for k in ("kafka", "kafka_complete", "clickhouse", "iceberg", "match")} == {
        "kafka": 2, "kafka_complete": True, "clickhouse": 2, "iceberg": 2, "match": True}

    with clickhouse_client(settings) as ch:  # a row loaded twice: exactly-once broken, and the counts say so
        ch.insert("game_minute_stats", [list(rows[0].values())], column_names=MINUTE_COLUMNS)
    counts = reconcile_counts(settings, "game_minute_stats", day.isoformat())
    assert (counts["clickhouse"], counts["match"]) == (3, False)
    cli = run_cli(settings, "check", "--reconcile", day.isoformat(), "--table", "game_minute_stats")
    assert cli.returncode == 1, cli.stderr
    assert f"FAIL kafka+clickhouse+iceberg game_minute_stats reconcile(window_end on {day}): kafka 2, clickhouse 3, iceberg 2" in cli.stdout
    with clickhouse_client(settings) as ch:
        recorded = ch.query(f"SELECT store, status, rows_tested, failures, examples FROM {RESULTS_TABLE} WHERE kind = 'reconcile'").result_rows
    assert recorded == [("kafka+clickhouse+iceberg", "fail", 3, 1, '[{"kafka": 2, "clickhouse": 3, "iceberg": 2}]')]
