"""Chat gold: per channel and minute statistics of the silver messages, against the channel's stream.

Reads `chat_silver` and `game_streams_enriched` (read_committed) and writes `chat_minute_stats` and
`chat_top_emotes` to Kafka (exactly once) and to the Iceberg gold tables, and the messages too late for
their window to `late_events`. Submit with `twitch-pipeline submit chat_aggregate`; `--bounded` stops at the
offsets present at start, and the end of input closes every window.
"""

from __future__ import annotations

from flink_jobs.aggregate import partition_by_day
from flink_jobs.runtime import job_parser, start_job

JOB_NAME = "chat_aggregate"

#: Iceberg tables of chat_aggregate_tables.sql, partitioned by day(window_start)
GOLD_TABLES = ("chat_minute_stats", "chat_top_emotes")


def main(argv: list[str] | None = None) -> None:
    # Chained operators hand records on without a defensive copy: every stateful operator sits behind a keyed exchange.
    job = start_job(JOB_NAME, job_parser(JOB_NAME, __doc__).parse_args(argv), conf={"pipeline.object-reuse": "true"})
    job.execute("chat_aggregate_tables")
    partition_by_day(job.settings, GOLD_TABLES)
    job.execute("chat_aggregate_windows")


if __name__ == "__main__":
    main()
