"""Aggregation job: sustained rows/s from `game_streams_enriched` through every window to every output.

Runs its own Kafka, Iceberg and Flink in a temporary run directory. 1M enriched rows (30k streams on
300 games, one poll every 30 s of event time per stream, ~17 minutes of event time) are written first
in Kafka transactions, as enrich_streams writes them; then the job runs bounded over them at the
configured parallelism. The rate is rows over the job's run time as Flink reports it (deployment
included), and the run is checked: every 1-minute window has its per-game rows in the lake.
"""

from __future__ import annotations

import time

from confluent_kafka.admin import NewTopic

from benchmarks._scratch import run_dir
from connectors.iceberg import load_catalog
from connectors.kafka import admin_client
from flink_jobs.aggregate import GOLD_TABLES, JOB_NAME
from tests.support.loadgen import encode, enriched_stream, produce_in_transactions
from twitch_pipeline.jobs import submit
from twitch_pipeline.platform.flink import Flink
from twitch_pipeline.platform.lifecycle import isolated, running
from twitch_pipeline.settings import Settings, load_settings

ROWS = 1_000_000
GAMES = 300  # enriched_stream puts row i on game i % 300 and at event time i ms


def _create_topics(settings: Settings) -> None:
    admin = admin_client(settings)
    topics = ["game_streams_enriched", *GOLD_TABLES, "late_events"]
    for future in admin.create_topics([NewTopic(t, settings.kafka_partitions, 1) for t in topics]).values():
        future.result(timeout=30)


def run(settings: Settings) -> dict:
    _create_topics(settings)
    began = time.monotonic()
    produce_in_transactions(settings, "game_streams_enriched", (encode(enriched_stream(i)) for i in range(ROWS)), per_transaction=10_000)
    produce_s = time.monotonic() - began
    job_id = submit(settings, JOB_NAME, ["--bounded"])
    job = Flink(settings).rest(f"/jobs/{job_id}")
    run_s = job["duration"] / 1000
    game_rows = len(load_catalog(settings).load_table(f"{settings.iceberg_namespace}.game_minute_stats").scan().to_arrow())
    windows = -(-ROWS // 60_000)  # event time spans ROWS ms
    return {
        "rows": ROWS,
        "parallelism": settings.flink_parallelism,
        "job_state": job["state"],
        "job_seconds": round(run_s, 1),
        "rows_per_s": round(ROWS / run_s),
        "producer_rows_per_s": round(ROWS / produce_s),
        "game_minute_rows": game_rows,
        "game_minute_rows_expected": windows * GAMES,
    }


def main() -> dict:
    with run_dir("aggregate") as path, running(isolated(load_settings(environ={}, dotenv=None), path)) as settings:
        return run(settings)
