"""Enrichment job: deduplicate stream snapshots and join them with profiles and games as of their time.

Submit with `twitch-pipeline submit enrich_streams` (or `flink run --python flink_jobs/enrich.py`).
`--bounded` reads the topics up to the offsets present at start and finishes: tests and backfills run
the very same SQL as the streaming job.
"""

from __future__ import annotations

from pathlib import Path

from flink_jobs.runtime import job_parser, start_job

JOB_NAME = "enrich_streams"


def main(argv: list[str] | None = None) -> None:
    parser = job_parser(JOB_NAME, __doc__)
    # Benchmarks run earlier variants of the SQL side by side with the current job.
    parser.add_argument("--sql", type=Path, default=None, help="run this SQL file instead of sql/enrich_streams.sql")
    args = parser.parse_args(argv)
    # Object reuse: without it every chained operator copies its input row, re-encoding each parsed string as
    # UTF-8 (~20 % of the TaskManager's CPU in a profile). Alternating A/B on a quiet machine (docs/performance.md,
    # session 5): 25,605 and 30,502 events/s with it against 18,193 and 21,496 without; every run exactly once.
    job = start_job(JOB_NAME, args, conf={"pipeline.object-reuse": "true"},
                    relay_heartbeats_to="game_streams_enriched")
    job.execute(args.sql or "enrich_streams")


if __name__ == "__main__":
    main()
