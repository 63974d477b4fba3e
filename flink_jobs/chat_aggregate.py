"""Chat gold: per channel and minute statistics of the silver messages, against the channel's stream.

Reads `chat_silver` and `game_streams_enriched` (read_committed) and writes `chat_minute_stats` and
`chat_top_emotes` to Kafka (exactly once) and to the Iceberg gold tables, and the messages too late for
their window to `late_events`. Submit with `twitch-pipeline submit chat_aggregate`; `--bounded` stops at the
offsets present at start, and the end of input closes every window.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flink_jobs.aggregate import partition_by_day
from flink_jobs.runtime import Job, job_parser, start_job

if TYPE_CHECKING:
    from pyflink.table import TableEnvironment

JOB_NAME = "chat_aggregate"

#: Iceberg tables of chat_aggregate_tables.sql, partitioned by day(window_start)
GOLD_TABLES = ("chat_minute_stats", "chat_top_emotes")


def plan_once(env: "TableEnvironment", view: str) -> None:
    """Replace the SQL view ``view`` by the Table its query plans to, so that every statement reading it shares one plan.

    A SQL view is expanded from its text in each statement that reads it. A view over an UNNEST (a correlated join)
    then gets a new correlation variable each time, the two INSERTs of a view (Kafka and Iceberg) no longer look
    alike to the planner (``table.optimizer.reuse-optimize-block-with-digest-enabled`` compares plans as text), and
    each runs its own copy of the aggregation. A Table holds its plan, correlation variable included.
    """
    table = env.sql_query(f"SELECT * FROM `{view}`")
    env.drop_temporary_view(view)
    env.create_temporary_view(view, table)


def prepare(job: Job) -> None:
    """Everything before the INSERTs: the tables, their partitioning and the views (the top emotes' planned once)."""
    job.execute("chat_aggregate_tables")
    partition_by_day(job.settings, GOLD_TABLES)
    job.execute("chat_aggregate_windows")
    plan_once(job.env, "chat_emote_uses")


def main(argv: list[str] | None = None) -> None:
    # Chained operators hand records on without a defensive copy: every stateful operator sits behind a keyed exchange.
    job = start_job(JOB_NAME, job_parser(JOB_NAME, __doc__).parse_args(argv), conf={"pipeline.object-reuse": "true"})
    prepare(job)
    job.execute("chat_aggregate_outputs")


if __name__ == "__main__":
    main()
