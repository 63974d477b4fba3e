"""Aggregation job: 1-minute event-time windows over the enriched stream snapshots.

Reads `game_streams_enriched` (read_committed) and writes per-game, per-language, share, duration and
top-N statistics to Kafka (exactly-once) and to the Iceberg gold tables, plus the rows that came too
late for their window to `late_events`. Submit with `twitch-pipeline submit aggregate_streams`;
`--bounded` stops at the offsets present at start, and the end of input closes every window.
"""

from __future__ import annotations

from flink_jobs.runtime import job_parser, start_job
from twitch_pipeline.settings import Settings

JOB_NAME = "aggregate_streams"

#: Iceberg tables of aggregate_tables.sql, all partitioned by day(window_start)
GOLD_TABLES = ("game_minute_stats", "language_minute_stats", "share_minute_stats", "stream_duration_stats", "top_streams")


def partition_by_day(settings: Settings, tables: tuple[str, ...] = GOLD_TABLES) -> None:
    """Give each still unpartitioned gold table the hidden partition day(window_start).

    Flink's DDL only declares identity partitions (which would need an extra date column); Iceberg's
    own day transform keeps the columns exactly those of the Kafka topics. Tables are empty when this
    first runs, so no data is rewritten; already partitioned tables are left alone.
    """
    from pyiceberg.transforms import DayTransform

    from connectors.iceberg import load_catalog

    catalog = load_catalog(settings)
    for name in tables:
        table = catalog.load_table(f"{settings.iceberg_namespace}.{name}")
        if table.spec().is_unpartitioned():
            with table.update_spec() as spec:
                spec.add_field("window_start", DayTransform(), "window_start_day")


def main(argv: list[str] | None = None) -> None:
    job = start_job(JOB_NAME, job_parser(JOB_NAME, __doc__).parse_args(argv))
    job.execute("aggregate_tables")
    partition_by_day(job.settings)
    job.execute("aggregate_windows")


if __name__ == "__main__":
    main()
