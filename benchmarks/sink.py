"""Kafka → ClickHouse sink: rows/s, and the time from a Kafka transaction commit to the rows being visible.

Runs its own Kafka and embedded ClickHouse in a temporary run directory and the sink as a separate
process, as `twitch-pipeline start` does. Load is written in Kafka transactions, like Flink's output.

* throughput: 1M `late_events` rows (narrow) and 300k `game_streams_enriched` rows (18 columns) are
  written first; rows/s is counted from the first row visible to the last.
* latency: 500-row transactions every 100 ms (5k rows/s) for 30 s; each transaction's rows carry its
  number, a poller sees when all of them are visible, and the delay from its commit is the latency.
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import threading
import time

from benchmarks._scratch import run_dir
from connectors.clickhouse import clickhouse_client
from connectors.migrations import apply_migrations
from connectors.topics import ensure_topics
from tests.support.loadgen import (
    encode,
    enriched_stream,
    late_event,
    produce_in_transactions,
)
from twitch_pipeline.errors import wait_until
from twitch_pipeline.platform.lifecycle import isolated, running
from twitch_pipeline.platform.process import ManagedProcess
from twitch_pipeline.settings import Settings, load_settings, to_env

THROUGHPUT_ROWS = {"late_events": 1_000_000, "game_streams_enriched": 300_000}
LATENCY_SECONDS, LATENCY_TXN_ROWS, LATENCY_TXN_EVERY_S = 30, 500, 0.1


def _count(settings: Settings, sql: str) -> int:
    with clickhouse_client(settings) as client:
        return client.query(sql).result_rows[0][0]


def _start_sink(settings: Settings, topic: str) -> ManagedProcess:
    sink = ManagedProcess(f"sink-{topic}", settings.run_path)
    env = to_env(dataclasses.replace(settings, sink_topics=topic, sink_group=f"bench-sink-{topic}"))
    sink.spawn([sys.executable, "-m", "twitch_pipeline.cli", "sink"], env=env)
    return sink


def throughput(settings: Settings, topic: str, rows: int) -> dict:
    make = late_event if topic == "late_events" else enriched_stream
    began = time.monotonic()
    produce_in_transactions(settings, topic, (encode(make(i)) for i in range(rows)), per_transaction=10_000)
    produced_s = time.monotonic() - began
    sink = _start_sink(settings, topic)
    try:
        spawned = time.monotonic()
        wait_until(lambda: _count(settings, f"SELECT count() FROM {topic}") > 0, 120, f"first {topic} rows", interval_s=0.05)
        first = time.monotonic()
        wait_until(lambda: _count(settings, f"SELECT count() FROM {topic}") >= rows, 900, f"all {topic} rows", interval_s=0.1)
        done = time.monotonic()
    finally:
        sink.stop(30)
    exact = _count(settings, f"SELECT count() FROM {topic}") == rows
    return {
        "rows": rows,
        "rows_per_s": round(rows / (done - first)),
        "seconds_first_to_last_row": round(done - first, 2),
        "seconds_sink_start_to_first_row": round(first - spawned, 2),
        "producer_rows_per_s": round(rows / produced_s),
        "count_without_final_exact": exact,
    }


def latency(settings: Settings) -> dict:
    with clickhouse_client(settings) as client:
        client.command("TRUNCATE TABLE late_events")
    sink = _start_sink(settings, "late_events")
    transactions = int(LATENCY_SECONDS / LATENCY_TXN_EVERY_S)
    visible: dict[int, float] = {}
    stop = threading.Event()

    def watch() -> None:
        with clickhouse_client(settings) as client:
            while not stop.is_set():
                for group, rows in client.query(
                    "SELECT stream_id, count() FROM late_events WHERE startsWith(stream_id, 'txn-') GROUP BY stream_id"
                ).result_rows:
                    number = int(group.removeprefix("txn-"))
                    if rows == LATENCY_TXN_ROWS and number not in visible:
                        visible[number] = time.time()
                stop.wait(0.05)

    try:
        # Warm up: the sink has joined its group and loads rows before the measured load begins.
        produce_in_transactions(settings, "late_events", (encode(late_event(-i - 1, "warmup")) for i in range(LATENCY_TXN_ROWS)))
        wait_until(lambda: _count(settings, "SELECT count() FROM late_events") == LATENCY_TXN_ROWS, 120, "warm-up rows visible")
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        start = time.monotonic() + 1.0

        def pace(n: int) -> None:
            delay = start + n * LATENCY_TXN_EVERY_S - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # holds the offered rate; not synchronisation

        values = (encode(late_event(i, f"txn-{i // LATENCY_TXN_ROWS}")) for i in range(transactions * LATENCY_TXN_ROWS))
        produced = produce_in_transactions(settings, "late_events", values, LATENCY_TXN_ROWS, pace=pace)
        wait_until(lambda: len(visible) == transactions, 120, "every transaction visible", interval_s=0.1)
        with clickhouse_client(settings) as client:
            p50, p99 = client.query(
                "SELECT quantile(0.5)(batch_latency_ms), quantile(0.99)(batch_latency_ms) FROM sink_batches "
                "WHERE target_table = 'late_events' AND committed_at >= now64(3) - toIntervalSecond({s:UInt32})",
                parameters={"s": LATENCY_SECONDS},
            ).result_rows[0]
    finally:
        stop.set()
        sink.stop(30)
    delays = sorted((visible[n] - produced.commit_times[n]) * 1000 for n in produced.commit_times)
    return {
        "offered_rows_per_s": round(LATENCY_TXN_ROWS / LATENCY_TXN_EVERY_S),
        "transactions": transactions,
        "commit_to_visible_ms": {
            "p50": round(statistics.median(delays)),
            "p99": round(delays[int(len(delays) * 0.99) - 1]),
            "max": round(delays[-1]),
        },
        "sink_batch_latency_ms": {"p50": round(p50), "p99": round(p99)},  # first record buffered → committed
        "batch_max_wait_s": settings.sink_batch_max_wait_s,
    }


def main() -> dict:
    with run_dir("sink") as path, running(isolated(load_settings(environ={}, dotenv=None), path), ["kafka", "clickhouse"]) as settings:
        apply_migrations(settings)
        ensure_topics(settings)
        return {
            "partitions": settings.kafka_partitions,
            "batch_rows": settings.sink_batch_rows,
            "throughput": {topic: throughput(settings, topic, rows) for topic, rows in THROUGHPUT_ROWS.items()},
            "latency": latency(settings),
        }
