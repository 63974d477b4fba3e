"""The sink against real Kafka (transactions, read_committed) and the embedded ClickHouse."""

from __future__ import annotations

import dataclasses
import json
import random
import sys
import threading
import uuid
from collections import defaultdict

import pytest
from confluent_kafka import Consumer, TopicPartition

from connectors.clickhouse import clickhouse_client
from connectors.kafka import client_config
from connectors.migrations import apply_migrations
from connectors.sink.health import sink_health
from connectors.sink.runner import run_sink
from connectors.topics import ensure_topics
from tests.support.loadgen import (
    encode,
    enriched_stream,
    late_event,
    produce_in_transactions,
)
from twitch_pipeline.errors import wait_until
from twitch_pipeline.platform.lifecycle import running
from twitch_pipeline.platform.process import ManagedProcess
from twitch_pipeline.settings import to_env

pytestmark = pytest.mark.integration

LOAD_ROWS = 1_000_000
PER_TRANSACTION = 5000
BAD_EVERY = 100_000  # one record in BAD_EVERY does not fit the table (dead letter)
ABORTED = lambda n: n % 17 == 5  # noqa: E731 - these transactions are aborted: read_committed must skip them


@pytest.fixture(scope="module")
def kafka_and_clickhouse(make_settings):
    with running(make_settings(kafka_partitions=2), ["kafka", "clickhouse"]) as settings:
        apply_migrations(settings)
        ensure_topics(settings)
        yield settings


def scalar(settings, sql: str):
    with clickhouse_client(settings) as client:
        return client.query(sql).result_rows[0][0]


def read_topic(settings, topic: str, partitions: int) -> dict[int, list[tuple[int, bytes]]]:
    """Every committed record of ``topic`` as (offset, value) per partition."""
    consumer = Consumer(client_config(settings, **{"group.id": f"check-{uuid.uuid4()}", "isolation.level": "read_committed", "enable.auto.commit": False}))
    bounds = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in range(partitions)}
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out: dict[int, list[tuple[int, bytes]]] = defaultdict(list)
    done = {p for p, (low, high) in bounds.items() if low == high}

    def caught_up() -> bool:
        for msg in consumer.consume(10_000, 0.5):
            if msg.error() is None:
                out[msg.partition()].append((msg.offset(), msg.value()))
        for p in range(partitions):
            if consumer.position([TopicPartition(topic, p)])[0].offset >= bounds[p][1]:
                done.add(p)
        return len(done) == partitions

    try:
        wait_until(caught_up, 120, f"reading {topic} to its end", interval_s=0)
    finally:
        consumer.close()
    return out


def load_values():
    for i in range(LOAD_ROWS):
        yield b'{"event_id": "bad-%d", "surprise": 1}' % i if i % BAD_EVERY == 7 else encode(late_event(i))


def test_kill_9_during_a_load_neither_loses_nor_duplicates(kafka_and_clickhouse):
    settings = dataclasses.replace(kafka_and_clickhouse, sink_topics="late_events", sink_group="kill-test", sink_batch_rows=20_000)
    committed_ids = [i for i in range(LOAD_ROWS) if not ABORTED(i // PER_TRANSACTION) and i % BAD_EVERY != 7]
    produced = {}
    producer = threading.Thread(target=lambda: produced.update(
        result=produce_in_transactions(settings, "late_events", load_values(), PER_TRANSACTION, ABORTED)), daemon=True)
    producer.start()

    sink = ManagedProcess("sink-kill-test", settings.run_path)
    argv = [sys.executable, "-m", "twitch_pipeline.cli", "sink"]
    count = lambda: scalar(settings, "SELECT count() FROM late_events")  # noqa: E731 - no FINAL: must be exact
    rng = random.Random(6)
    kills = 0
    sink.spawn(argv, env=to_env(settings))
    try:
        while count() < len(committed_ids) * 0.8:
            target = count() + rng.randint(20_000, 80_000)
            wait_until(lambda: count() >= target or count() >= len(committed_ids) * 0.8, 180, "sink progress")
            threading.Event().wait(rng.uniform(0, 0.3))  # not synchronisation: lands the kill anywhere in a batch's cycle
            sink.kill()
            kills += 1
            sink.spawn(argv, env=to_env(settings))
        producer.join(300)
        wait_until(lambda: count() == len(committed_ids), 300, "every committed row in ClickHouse")
        wait_until(lambda: sink_health(settings)["lag"] == 0, 60, "the sink's lag to reach 0")
    finally:
        sink.stop(settings.stop_timeout_s)
    assert kills >= 5

    assert produced["result"].committed == LOAD_ROWS - produced["result"].aborted
    with clickhouse_client(settings) as client:
        rows, unique, id_sum = client.query(
            "SELECT count(), uniqExact(event_id), sum(toUInt64(substring(event_id, 6))) FROM late_events"
        ).result_rows[0]
        ranges = client.query(
            "SELECT DISTINCT kafka_partition, first_offset, last_offset, rows, dead_letters FROM sink_batches "
            "WHERE target_table = 'late_events' ORDER BY kafka_partition, first_offset"
        ).result_rows
    assert rows == unique == len(committed_ids)  # nothing lost, nothing twice, aborted rows absent
    assert id_sum == sum(committed_ids)

    log = read_topic(settings, "late_events", settings.kafka_partitions)
    misfits = set()
    for partition, records in log.items():
        mine = [(first, last, n, bad) for p, first, last, n, bad in ranges if p == partition]
        covered = [o for first, last, _, _ in mine for o in range(first, last + 1)]
        assert len(covered) == len(set(covered)), f"overlapping offset ranges on partition {partition}"
        offsets = {o for o, _ in records}
        assert offsets <= set(covered), f"offset range missing on partition {partition}"
        assert sum(n + bad for *_, n, bad in mine) == len(records)
        misfits |= {(partition, o) for o, v in records if b"surprise" in v}
    letters = read_topic(settings, settings.sink_dead_letter_topic, settings.kafka_partitions)
    rejected = {(d["partition"], d["offset"]) for records in letters.values() for _, v in records if (d := json.loads(v))["topic"] == "late_events"}
    assert rejected == misfits and len(misfits) == LOAD_ROWS // BAD_EVERY - sum(ABORTED(i // PER_TRANSACTION) for i in range(7, LOAD_ROWS, BAD_EVERY))


W1, W2 = "2026-11-21T11:04:00.000Z", "2026-11-21T11:05:00.000Z"
W_END = {W1: W2, W2: "2026-11-21T11:06:00.000Z"}


def game_minute(window: str, game: str, viewers: int) -> dict:
    return {"window_start": window, "window_end": W_END[window], "game_id": game, "game_name": f"Game {game}", "viewers_sum": viewers,
            "viewers_avg": viewers / 2, "viewers_max": viewers // 2, "live_streams": 2, "new_streams": 1}


FLINK_OUTPUTS = {
    "game_minute_stats": [game_minute(W1, "1", 100), game_minute(W1, "2", 300), game_minute(W2, "1", 500), game_minute(W2, "2", 200)],
    "language_minute_stats": [
        {"window_start": W2, "window_end": W_END[W2], "language": "en", "viewers_sum": 600, "live_streams": 3},
        {"window_start": W2, "window_end": W_END[W2], "language": "de", "viewers_sum": 200, "live_streams": 1},
    ],
    "share_minute_stats": [
        {"window_start": W2, "window_end": W_END[W2], "dimension": d, "value": v, "live_streams": n, "viewers_sum": n * 100}
        for d, v, n in [("is_mature", "true", 1), ("is_mature", "false", 3), ("broadcaster_type", "partner", 2), ("broadcaster_type", "affiliate", 2)]
    ],
    "stream_duration_stats": [
        {"window_start": W2, "window_end": W_END[W2], "game_id": g, "game_name": None, "duration_bucket": b, "live_streams": n}
        for g, b, n in [("1", "0-1h", 1), ("2", "0-1h", 2), ("1", "8h+", 1)]
    ],
    "top_streams": [
        {"window_start": W2, "window_end": W_END[W2], "rank_in_window": r, "stream_id": f"s{r}", "user_login": f"u{r}", "user_name": f"U{r}",
         "game_id": "1", "game_name": "Game 1", "title": "t", "language": "en", "viewer_count": 1000 - r}
        for r in (2, 1, 3)
    ],
    "late_events": [late_event(1), late_event(2)],
    "game_streams_enriched": [enriched_stream(i) for i in range(3)],
}


def test_every_flink_output_lands_in_its_table_and_the_views_answer(kafka_and_clickhouse):
    settings = dataclasses.replace(kafka_and_clickhouse, sink_group="outputs-test", sink_batch_max_wait_s=0.2)
    before = {topic: scalar(settings, f"SELECT count() FROM {topic}") for topic in FLINK_OUTPUTS}  # other tests load late_events
    for topic, rows in FLINK_OUTPUTS.items():
        values = [encode(r) for r in rows]
        if topic == "top_streams":
            values.append(encode({**rows[0], "rank_in_window": "first"}))  # a misfit: wrong type
        produce_in_transactions(settings, topic, values)
    stop = threading.Event()
    failure = []
    runner = threading.Thread(target=lambda: _capture(failure, run_sink, settings, stop), daemon=True)
    runner.start()
    try:
        for topic, rows in FLINK_OUTPUTS.items():
            wait_until(lambda: failure or scalar(settings, f"SELECT count() FROM {topic}") == before[topic] + len(rows), 60, f"{topic} loaded")
            assert not failure, failure
    finally:
        stop.set()
        runner.join(30)
    assert not runner.is_alive() and not failure

    with clickhouse_client(settings) as client:
        def query(sql: str) -> list[tuple]:
            return client.query(sql).result_rows

        assert [(g, v) for _, g, _, v, *_ in query("SELECT * FROM dash_top_games_now")] == [("1", 500), ("2", 200)]
        assert query("SELECT game_id, recent_viewers, growth FROM dash_game_trends ORDER BY game_id") == [("1", 300.0, None), ("2", 250.0, None)]
        assert query("SELECT game_id, peak_viewers, minutes FROM dash_top_games_hourly ORDER BY game_id") == [("1", 500, 2), ("2", 300, 2)]
        assert query("SELECT language, viewer_share FROM dash_language_share ORDER BY language") == [("de", 0.25), ("en", 0.75)]
        assert query("SELECT is_mature, stream_share FROM dash_mature_share ORDER BY is_mature") == [(0, 0.75), (1, 0.25)]
        assert query("SELECT broadcaster_type, viewer_share FROM dash_broadcaster_type_share ORDER BY 1") == [("affiliate", 0.5), ("partner", 0.5)]
        assert query("SELECT duration_bucket, streams, stream_share FROM dash_stream_durations ORDER BY 1") == [("0-1h", 3, 0.75), ("8h+", 1, 0.25)]
        assert [r[1] for r in query("SELECT * FROM dash_top_streams_now")] == [1, 2, 3]
        assert query("SELECT count(), min(live_seconds) FROM dash_stream_sessions") == [(3, 0)]
    letters = read_topic(settings, settings.sink_dead_letter_topic, settings.kafka_partitions)
    reasons = [json.loads(v) for records in letters.values() for _, v in records]
    assert any(d["topic"] == "top_streams" and "rank_in_window" in d["reason"] for d in reasons)
    health = sink_health(settings)
    assert health["available"] and {p["table"] for p in health["partitions"]} >= set(FLINK_OUTPUTS)


def _capture(failure: list, fn, *args) -> None:
    try:
        fn(*args)
    except BaseException as exc:  # noqa: BLE001 - surfaced by the test thread
        failure.append(repr(exc))
