"""The streaming aggregation job through a TaskManager kill -9: every window once, none lost, and it drains.

Input is written the way enrich_streams writes it: enriched rows in committed transactions, in event-time
order, followed by heartbeats relayed to every partition. Twenty minutes of 40 streams over 4 games: the
first ten minutes are aggregated and committed, the TaskManager is killed, the next ten are written while it
is down, and after the restart the job recovers from its last checkpoint. A final heartbeat closes the
last window without any further data, as at the end of a bounded produce.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import pytest
from confluent_kafka import Producer

from connectors.iceberg import load_catalog
from connectors.kafka import client_config, partition_count
from connectors.topics import ensure_topics, heartbeat_keys
from tests.kafka_io import read_committed, with_datetimes
from twitch_pipeline.errors import wait_until
from twitch_pipeline.jobs import cancel, submit
from twitch_pipeline.platform.flink import Flink
from twitch_pipeline.platform.lifecycle import running
from twitch_pipeline.settings import Settings

SOURCE_TOPIC = "game_streams_enriched"
T0 = datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc)
STREAMS, GAMES, MINUTES, KILL_AFTER = 40, 4, 20, 10


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def snapshot(minute: int, stream: int) -> dict[str, Any]:
    """Stream ``stream`` polled at second 30 of ``minute``: game stream % GAMES, viewers minute + stream."""
    return {
        "event_id": f"m{minute}-s{stream}", "stream_id": f"s{stream}", "user_id": f"u{stream}", "user_login": f"user{stream}",
        "user_name": f"User{stream}", "game_id": f"g{stream % GAMES}", "game_name": f"Game {stream % GAMES}", "stream_type": "live",
        "title": "live", "viewer_count": minute + stream, "started_at": iso(T0 - timedelta(hours=1)), "language": "en",
        "is_mature": False, "tags": "", "broadcaster_type": "affiliate", "user_description": "", "user_created_at": None,
        "data_retrieved_at": iso(T0 + timedelta(minutes=minute, seconds=30)),
    }


class EnrichedWriter:
    """Writes like enrich_streams: one transaction per batch, heartbeats under each partition's key."""

    def __init__(self, settings: Settings):
        self.producer = Producer(client_config(settings, **{"transactional.id": f"test-enriched-{uuid.uuid4()}"}))
        self.producer.init_transactions(30)
        self.keys = heartbeat_keys(partition_count(settings, SOURCE_TOPIC))

    def write(self, minutes: range, heartbeat_minute: int) -> None:
        self.producer.begin_transaction()
        for minute in minutes:
            for stream in range(STREAMS):
                row = snapshot(minute, stream)
                self.producer.produce(SOURCE_TOPIC, json.dumps(row).encode(), key=row["event_id"].encode())
        for partition, key in enumerate(self.keys):  # Flink's sink puts key i on partition i (librdkafka would not)
            heartbeat = {"event_id": key, "data_retrieved_at": iso(T0 + timedelta(minutes=heartbeat_minute))}
            self.producer.produce(SOURCE_TOPIC, json.dumps(heartbeat).encode(), key=key.encode(), partition=partition)
        self.producer.commit_transaction(30)


def expected_game_rows(minutes: range) -> Counter:
    per_game = Counter()
    for minute in minutes:
        for stream in range(STREAMS):
            window = T0 + timedelta(minutes=minute)
            per_game[(window, f"g{stream % GAMES}")] += minute + stream
    return Counter({(window, game, viewers, STREAMS // GAMES): 1 for (window, game), viewers in per_game.items()})


def game_rows(settings: Settings, until) -> Counter:
    rows = [with_datetimes(r) for r in read_committed(settings, "game_minute_stats", until, timeout_s=300)]
    return Counter((r["window_start"], r["game_id"], r["viewers_sum"], r["live_streams"]) for r in rows)


@pytest.fixture(scope="module")
def aggregating(make_settings) -> Iterator[Settings]:
    lateness_s = 120.0  # covers any interleaving of the partitions' reads; the heartbeats move past it
    with running(make_settings(watermark_lateness_s=lateness_s, checkpoint_interval_s=2.0)) as settings:
        ensure_topics(settings)
        submit(settings, "aggregate_streams")
        try:
            yield settings
        finally:
            cancel(settings, "aggregate_streams")


def test_windows_are_exactly_once_across_a_taskmanager_kill(aggregating):
    settings = aggregating
    writer = EnrichedWriter(settings)
    lateness_min = int(settings.watermark_lateness_s // 60)
    writer.write(range(KILL_AFTER), KILL_AFTER + lateness_min)  # closes every window of the first part
    first = expected_game_rows(range(KILL_AFTER))
    assert game_rows(settings, lambda rs: len(rs) >= len(first)) == first

    flink = Flink(settings)
    flink.processes[1].kill()  # kill -9 the TaskManager
    writer.write(range(KILL_AFTER, MINUTES), MINUTES + lateness_min)  # while it is down; drains the rest
    flink.start()
    flink.wait_healthy()

    expected = expected_game_rows(range(MINUTES))
    got = game_rows(settings, lambda rs: len(rs) >= len(expected))
    assert sorted(got.elements()) == sorted(expected.elements()), "each (window, game) exactly once, none missing"
    late = read_committed(settings, "late_events")
    assert late == [], "replay after recovery must not be classed as late"

    table = load_catalog(settings).load_table(f"{settings.iceberg_namespace}.game_minute_stats")

    def lake() -> Counter:
        table.refresh()
        return Counter((r["window_start"], r["game_id"], r["viewers_sum"], r["live_streams"]) for r in table.scan().to_arrow().to_pylist())

    wait_until(lambda: lake().total() >= expected.total(), 60, "every window committed to the gold table")
    assert sorted(lake().elements()) == sorted(expected.elements()), "the gold table, too, holds each window once"
