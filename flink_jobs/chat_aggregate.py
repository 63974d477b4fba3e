"""Chat gold: per channel and minute statistics of the silver messages, against the channel's stream.

Reads `chat_silver` and `game_streams_enriched` (read_committed) and writes `chat_minute_stats` and
`chat_top_emotes` to Kafka (exactly once) and to the Iceberg gold tables, and the messages too late for
their window to `late_events`. Submit with `twitch-pipeline submit chat_aggregate`; `--bounded` stops at the
offsets present at start, and the end of input closes every window.
"""

from __future__ import annotations

import argparse

from flink_jobs.aggregate import partition_by_day
from flink_jobs.runtime import execute_script, sql_params, table_env
from twitch_pipeline.settings import load_settings

JOB_NAME = "chat_aggregate"

#: Iceberg tables of chat_aggregate_tables.sql, partitioned by day(window_start)
GOLD_TABLES = ("chat_minute_stats", "chat_top_emotes")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=JOB_NAME, description=__doc__)
    parser.add_argument("--bounded", action="store_true", help="stop at the offsets present at start (backfill/test)")
    args = parser.parse_args(argv)
    settings = load_settings()
    env = table_env(settings, JOB_NAME, bounded=args.bounded)
    # Chained operators hand records on without a defensive copy: every stateful operator sits behind a keyed exchange.
    env.get_config().set("pipeline.object-reuse", "true")
    params = sql_params(settings, JOB_NAME, bounded=args.bounded)
    execute_script(env, "chat_aggregate_tables", params)
    partition_by_day(settings, GOLD_TABLES)
    result = execute_script(env, "chat_aggregate_windows", params)
    if args.bounded and result is not None:
        result.wait()


if __name__ == "__main__":
    main()
