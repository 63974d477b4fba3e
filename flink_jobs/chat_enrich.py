"""Chat bronze and silver: keep every chat_messages record, deduplicate and score the valid messages.

Writes the Iceberg table lake.chat_bronze (every record once, raw bytes and parse status), dead_letter
(malformed records), chat_silver (Kafka, exactly once, and lake.chat_silver) and late_events. Submit with
`twitch-pipeline submit chat_enrich`; `--bounded` reads chat_messages up to the offsets present at start and
finishes (tests and backfills run the same SQL). The per-message Python work is one vectorized UDF,
:func:`flink_jobs.chat_udfs.parse_chat_udf`, run in Flink's Python workers.
"""

from __future__ import annotations

import argparse
import sys

from connectors.kafka import partition_count
from connectors.topics import heartbeat_keys
from flink_jobs.runtime import execute_script, sql_params, table_env
from twitch_pipeline.settings import Settings, load_settings

JOB_NAME = "chat_enrich"
SILVER_TOPIC = "chat_silver"


def chat_enrich_params(settings: Settings, bounded: bool) -> dict[str, str]:
    """The shared SQL parameters plus one heartbeat key per partition of chat_silver (read when submitted)."""
    keys = heartbeat_keys(partition_count(settings, SILVER_TOPIC))
    return {**sql_params(settings, JOB_NAME, bounded=bounded), "heartbeat_keys": ", ".join(f"'{k}'" for k in keys)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=JOB_NAME, description=__doc__)
    parser.add_argument("--bounded", action="store_true", help="stop at the offsets present at start (backfill/test)")
    args = parser.parse_args(argv)
    settings = load_settings()
    env = table_env(settings, JOB_NAME, bounded=args.bounded)
    conf = env.get_config()
    # The Python workers must run the interpreter that submitted the job: it has vaderSentiment, the lexicon
    # and this project importable (the cluster default is the one that started it, which may be another).
    conf.set("python.executable", sys.executable)
    conf.set("python.client.executable", sys.executable)
    # Small state (one-second dedup windows): heap state, as enrich_streams.
    conf.set("state.backend.type", "hashmap")
    # Chained operators hand records on without a defensive copy (as in enrich_streams): the stateful dedup sits
    # behind a keyed exchange, and the Python operator copies the rows it holds while the worker computes.
    conf.set("pipeline.object-reuse", "true")
    from flink_jobs.chat_udfs import parse_chat_udf

    env.create_temporary_system_function("parse_chat", parse_chat_udf())
    result = execute_script(env, "chat_enrich", chat_enrich_params(settings, args.bounded))
    if args.bounded and result is not None:
        result.wait()


if __name__ == "__main__":
    main()
