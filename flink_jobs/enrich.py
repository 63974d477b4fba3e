"""Enrichment job: deduplicate stream snapshots and join them with profiles and games as of their time.

Submit with `twitch-pipeline submit enrich_streams` (or `flink run --python flink_jobs/enrich.py`).
`--bounded` reads the topics up to the offsets present at start and finishes: tests and backfills run
the very same SQL as the streaming job.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from connectors.kafka import partition_count
from connectors.topics import heartbeat_keys
from flink_jobs.runtime import execute_script, sql_params, table_env
from twitch_pipeline.settings import Settings, load_settings

JOB_NAME = "enrich_streams"
OUTPUT_TOPIC = "game_streams_enriched"


def enrich_params(settings: Settings, bounded: bool) -> dict[str, str]:
    """The shared SQL parameters plus the keys that address each partition of the output topic.

    Heartbeats are relayed once per output partition, so the partition count is read from the broker
    when the job is submitted (resubmit after adding partitions).
    """
    keys = heartbeat_keys(partition_count(settings, OUTPUT_TOPIC))
    return {**sql_params(settings, JOB_NAME, bounded=bounded), "heartbeat_keys": ", ".join(f"'{k}'" for k in keys)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=JOB_NAME, description=__doc__)
    parser.add_argument("--bounded", action="store_true", help="stop at the offsets present at start (backfill/test)")
    # Benchmarks run earlier variants (SQL, configuration) side by side with the current job.
    parser.add_argument("--sql", type=Path, default=None, help="run this SQL file instead of sql/enrich_streams.sql")
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE", help="Flink configuration over the job's own (repeatable)")
    args = parser.parse_args(argv)
    settings = load_settings()
    env = table_env(settings, JOB_NAME, bounded=args.bounded)
    # Heap state: this job's state is small (one-second dedup windows, rows waiting for the watermark in the
    # sort, one version per profile and game), and the temporal sort keeps one list per timestamp. Every
    # snapshot of a poll shares its timestamp, and RocksDB rewrites the whole list on each append.
    env.get_config().set("state.backend.type", "hashmap")
    for key, _, value in (item.partition("=") for item in args.conf):
        env.get_config().set(key, value)
    result = execute_script(env, args.sql or "enrich_streams", enrich_params(settings, args.bounded))
    if args.bounded and result is not None:
        result.wait()


if __name__ == "__main__":
    main()
