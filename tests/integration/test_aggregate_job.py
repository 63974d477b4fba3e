"""The aggregation job on real Kafka, Flink and Iceberg: known enriched snapshots in, exact windows out.

One bounded run covers every output. The input is written the way enrich_streams writes it (one
Kafka transaction) to a one-partition topic, so its order, and therefore every watermark, is fixed:

    allowed lateness 30 s, watermark = highest data_retrieved_at - 30 s (one per event)
    11:00 window  s1 twice (latest snapshot counts), s2, s3 (started in the window), s4 (no profile),
                  s5 (unknown game, arrives after 11:01:20: out of order but its window is still open)
    11:01 window  s1, s2, s6 (new), s3; s2 and s6 tie at 500 viewers
    11:02 window  s1 at 11:02:35 moves the watermark to 11:02:05, which closes 11:00 and 11:01, so
                  s4 @ 11:01:50 and s2 @ 11:00:30 arriving next are late; s7 @ 11:02:01 is behind the
                  watermark too but its window is open, so it counts; t01..t10 fill the top 10, with
                  t09 and t10 tied at the cut (t10 arrives first)
    end of input  Flink's final watermark closes the 11:02 window without any further event

Top-10 ties are broken by stream_id ascending. The platform is this module's own (Kafka, Iceberg,
Flink, no ClickHouse): the job reads and writes fixed topic names, which other tests' jobs also use.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic

from connectors.iceberg import load_catalog
from connectors.kafka import admin_client, client_config
from tests.kafka_io import read_committed, with_datetimes
from twitch_pipeline.jobs import list_jobs, submit
from twitch_pipeline.platform.lifecycle import running
from twitch_pipeline.settings import Settings

SOURCE_TOPIC = "game_streams_enriched"
OUTPUTS = ("game_minute_stats", "language_minute_stats", "share_minute_stats", "stream_duration_stats", "top_streams")
DAY = datetime(2026, 11, 21, tzinfo=timezone.utc)


def at(clock: str) -> datetime:
    """``"11:00:05"`` on the test day, UTC."""
    hours, minutes, seconds = (int(part) for part in clock.split(":"))
    return DAY + timedelta(hours=hours, minutes=minutes, seconds=seconds)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# stream_id -> (user_login, game_id, game_name, language, is_mature, broadcaster_type, started_at)
STREAMS: dict[str, tuple] = {
    "s1": ("alpha", "g1", "Chess", "en", False, "partner", "10:30:00"),
    "s2": ("bravo", "g1", "Chess", "de", True, "affiliate", "08:30:00"),
    "s3": ("charlie", "g2", "Just Chatting", "en", False, "", "10:59:50"),  # went live before the minute of its first poll: new in minute 0
    "s4": ("delta", "g2", "Just Chatting", "es", True, None, "01:00:00"),
    "s5": ("echo", "g3", None, "en", False, "partner", "09:30:00"),
    "s6": ("foxtrot", "g2", "Just Chatting", "en", False, "affiliate", "11:01:15"),
    "s7": ("golf", "g1", "Chess", "de", True, "affiliate", "06:00:00"),
    **{f"t{n:02d}": (f"tango{n:02d}", "g2", "Just Chatting", "fr", False, "affiliate", "10:00:00") for n in range(1, 11)},
}

# (stream_id, data_retrieved_at, viewer_count) in produce order
SNAPSHOTS: list[tuple[str, str, int]] = [
    ("s1", "11:00:05", 1000), ("s2", "11:00:10", 500), ("s3", "11:00:20", 300), ("s4", "11:00:40", 300),
    ("s1", "11:00:50", 1200),
    ("s1", "11:01:05", 1100), ("s2", "11:01:10", 500), ("s6", "11:01:20", 500),
    ("s5", "11:00:55", 50),
    ("s3", "11:01:40", 700),
    ("s1", "11:02:35", 1300),
    ("s4", "11:01:50", 999), ("s2", "11:00:30", 777),
    ("s7", "11:02:01", 5),
    ("t10", "11:02:12", 20), ("t09", "11:02:14", 20),
    *[(f"t{n:02d}", f"11:02:{14 + 2 * n}", 110 - 10 * n) for n in range(1, 9)],
]


def enriched_row(number: int, stream_id: str, retrieved: str, viewers: int) -> dict[str, Any]:
    login, game_id, game_name, language, mature, broadcaster_type, started = STREAMS[stream_id]
    return {
        "event_id": f"e{number:02d}", "stream_id": stream_id, "user_id": f"u-{stream_id}",
        "user_login": login, "user_name": login.title(), "game_id": game_id, "game_name": game_name,
        "stream_type": "live", "title": f"{login} live", "viewer_count": viewers,
        "started_at": iso(at(started)), "language": language, "is_mature": mature, "tags": "English,Chill",
        "broadcaster_type": broadcaster_type,
        "user_description": None if broadcaster_type is None else f"about {login}",
        "user_created_at": None if broadcaster_type is None else "2020-01-01T00:00:00.000Z",
        "data_retrieved_at": iso(at(retrieved)),
    }


def window(minute: int) -> dict[str, datetime]:
    start = at(f"11:{minute:02d}:00")
    return {"window_start": start, "window_end": start + timedelta(minutes=1)}


def rows(columns: str, minute: int, *values: tuple) -> list[dict[str, Any]]:
    names = columns.split()
    return [{**window(minute), **dict(zip(names, row, strict=True))} for row in values]


GAME_COLUMNS = "game_id game_name viewers_sum viewers_avg viewers_max live_streams new_streams"
EXPECTED: dict[str, list[dict[str, Any]]] = {
    "game_minute_stats": [
        *rows(GAME_COLUMNS, 0, ("g1", "Chess", 1700, 850.0, 1200, 2, 0), ("g2", "Just Chatting", 600, 300.0, 300, 2, 1), ("g3", None, 50, 50.0, 50, 1, 0)),
        *rows(GAME_COLUMNS, 1, ("g1", "Chess", 1600, 800.0, 1100, 2, 0), ("g2", "Just Chatting", 1200, 600.0, 700, 2, 1)),
        *rows(GAME_COLUMNS, 2, ("g1", "Chess", 1305, 652.5, 1300, 2, 0), ("g2", "Just Chatting", 560, 56.0, 100, 10, 0)),
    ],
    "language_minute_stats": [
        *rows("language viewers_sum live_streams", 0, ("en", 1550, 3), ("de", 500, 1), ("es", 300, 1)),
        *rows("language viewers_sum live_streams", 1, ("en", 2300, 3), ("de", 500, 1)),
        *rows("language viewers_sum live_streams", 2, ("en", 1300, 1), ("de", 5, 1), ("fr", 560, 10)),
    ],
    "share_minute_stats": [
        *rows("dimension value live_streams viewers_sum", 0,
              ("is_mature", "true", 2, 800), ("is_mature", "false", 3, 1550),
              ("broadcaster_type", "partner", 2, 1250), ("broadcaster_type", "affiliate", 1, 500),
              ("broadcaster_type", "", 1, 300), ("broadcaster_type", "unknown", 1, 300)),
        *rows("dimension value live_streams viewers_sum", 1,
              ("is_mature", "true", 1, 500), ("is_mature", "false", 3, 2300),
              ("broadcaster_type", "partner", 1, 1100), ("broadcaster_type", "affiliate", 2, 1000),
              ("broadcaster_type", "", 1, 700)),
        *rows("dimension value live_streams viewers_sum", 2,
              ("is_mature", "true", 1, 5), ("is_mature", "false", 11, 1860),
              ("broadcaster_type", "partner", 1, 1300), ("broadcaster_type", "affiliate", 11, 565)),
    ],
    "stream_duration_stats": [
        *rows("game_id game_name duration_bucket live_streams", 0,
              ("g1", "Chess", "0-1h", 1), ("g1", "Chess", "2-4h", 1), ("g2", "Just Chatting", "0-1h", 1),
              ("g2", "Just Chatting", "8h+", 1), ("g3", None, "1-2h", 1)),
        *rows("game_id game_name duration_bucket live_streams", 1,
              ("g1", "Chess", "0-1h", 1), ("g1", "Chess", "2-4h", 1), ("g2", "Just Chatting", "0-1h", 2)),
        *rows("game_id game_name duration_bucket live_streams", 2,
              ("g1", "Chess", "0-1h", 1), ("g1", "Chess", "4-8h", 1), ("g2", "Just Chatting", "1-2h", 10)),
    ],
}


def top(minute: int, ranking: list[tuple[str, int]]) -> list[dict[str, Any]]:
    out = []
    for rank, (stream_id, viewers) in enumerate(ranking, start=1):
        login, game_id, game_name, language, *_ = STREAMS[stream_id]
        out.append({**window(minute), "rank_in_window": rank, "stream_id": stream_id, "user_login": login,
                    "user_name": login.title(), "game_id": game_id, "game_name": game_name,
                    "title": f"{login} live", "language": language, "viewer_count": viewers})
    return out


EXPECTED["top_streams"] = [
    *top(0, [("s1", 1200), ("s2", 500), ("s3", 300), ("s4", 300), ("s5", 50)]),
    *top(1, [("s1", 1100), ("s3", 700), ("s2", 500), ("s6", 500)]),
    *top(2, [("s1", 1300), *[(f"t{n:02d}", 110 - 10 * n) for n in range(1, 9)], ("t09", 20)]),
]


@pytest.fixture(scope="module")
def lake_platform(make_settings) -> Iterator[Settings]:
    """Kafka, Iceberg and Flink on free ports, with the job's topics created."""
    with running(make_settings(watermark_lateness_s=30.0)) as settings:
        topics = (SOURCE_TOPIC, *OUTPUTS, "late_events")
        # One input partition: with two, an empty or lagging one holds the watermark back until it is
        # read, so which rows count as late would depend on fetch timing instead of on the data.
        new_topics = [NewTopic(t, 1 if t == SOURCE_TOPIC else settings.kafka_partitions, 1) for t in topics]
        admin = admin_client(settings)  # must outlive its futures
        for future in admin.create_topics(new_topics).values():
            future.result(timeout=30)
        yield settings


def produce_transactionally(settings: Settings, rows_: list[dict[str, Any]]) -> None:
    """As enrich_streams writes: one committed transaction, in order, to the topic's single partition."""
    producer = Producer(client_config(settings, **{"transactional.id": f"test-enriched-{uuid.uuid4()}"}))
    producer.init_transactions(30)
    producer.begin_transaction()
    for row in rows_:
        producer.produce(SOURCE_TOPIC, json.dumps(row).encode(), key=row["stream_id"].encode(), partition=0)
    producer.commit_transaction(30)


def ordered(rows_: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows_, key=lambda r: json.dumps(r, sort_keys=True, default=str))


@pytest.fixture(scope="module")
def finished_run(lake_platform: Settings) -> Settings:
    produce_transactionally(lake_platform, [enriched_row(n, *snap) for n, snap in enumerate(SNAPSHOTS, start=1)])
    submit(lake_platform, "aggregate_streams", ["--bounded"])
    return lake_platform


def test_bounded_run_finishes_after_its_input(finished_run):
    jobs = [j for j in list_jobs(finished_run) if j["name"] == "aggregate_streams"]
    assert [j["state"] for j in jobs] == ["FINISHED"]


@pytest.mark.parametrize("output", OUTPUTS)
def test_kafka_output_is_exactly_the_expected_windows(finished_run, output):
    assert ordered([with_datetimes(r) for r in read_committed(finished_run, output)]) == ordered(EXPECTED[output])


@pytest.mark.parametrize("output", OUTPUTS)
def test_iceberg_gold_table_matches_and_is_partitioned_by_day(finished_run, output):
    table = load_catalog(finished_run).load_table(f"{finished_run.iceberg_namespace}.{output}")
    assert ordered(table.scan().to_arrow().to_pylist()) == ordered(EXPECTED[output])
    (field,) = table.spec().fields
    assert str(field.transform) == "day" and table.schema().find_field(field.source_id).name == "window_start"


def test_rows_too_late_for_their_window_go_to_late_events(finished_run):
    late = [with_datetimes(r) for r in read_committed(finished_run, "late_events")]
    assert sorted((r["event_id"], r["stream_id"], r["data_retrieved_at"], r["reason"]) for r in late) == [
        ("e12", "s4", at("11:01:50"), "late_for_window"),
        ("e13", "s2", at("11:00:30"), "late_for_window"),
    ]
    assert all(r["detected_at"] is not None for r in late)
