"""Backfills: recompute the minute aggregates of whole days from the Iceberg lake and swap them in.

The gold tables of both aggregations: the streams' (from ``lake.game_streams_enriched``) and the chat's (from
``lake.chat_silver``, against the same lake's stream snapshots).

One day at a time, in three steps that the CLI (`twitch-pipeline backfill`) and the Airflow backfill DAG
share — the DAG runs them as tasks, one run per day partition:

1. :func:`prepare` creates an empty Iceberg staging table per gold table, unique to this run.
2. A bounded Flink job (``flink_jobs/backfill_aggregate.py``: the streaming jobs' window SQL over the day's
   rows in the lake) fills them. :func:`compute_local` runs it on the local cluster; on
   Kubernetes the DAG runs it as a FlinkDeployment with the same arguments (:meth:`Plan.driver_args`).
3. :func:`publish` swaps each day partition in one atomic step per store: an Iceberg overwrite of the day
   (delete and append in one commit) and ClickHouse's ``REPLACE PARTITION`` from a staging table.

Readers see the old rows or the new ones, never a mix or a gap: a run killed before step 3 leaves only
staging tables behind (dropped by the next run of that day). Running a day twice gives the same rows.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import importlib.util
import os
import subprocess
import uuid
from typing import Any, Callable

from connectors import catalog
from twitch_pipeline.errors import PlatformError, wait_until
from twitch_pipeline.settings import PROJECT_ROOT, Settings, to_env

DRIVER = PROJECT_ROOT / "flink_jobs" / "backfill_aggregate.py"
#: The streaming jobs whose outputs a backfill recomputes.
SOURCE_JOBS = (catalog.job("aggregate_streams"), catalog.job("chat_aggregate"))
STAGING_PREFIX = "backfill_"


def _gold_names() -> tuple[str, ...]:
    names = {name for job in SOURCE_JOBS for name in job.outputs}
    return tuple(o.name for o in catalog.OUTPUTS if o.name in names and o.iceberg)


#: The bounded job a backfill runs (on Kubernetes, a FlinkDeployment rendered like the streaming jobs').
BACKFILL_JOB = catalog.Job(
    "backfill_aggregates",
    "Recomputes whole days of the stream and chat aggregations' gold tables from the lake, into staging tables (bounded).",
    "flink_jobs.backfill_aggregate",
    inputs=(),
    outputs=_gold_names(),
    streaming=False,
    sql=("backfill_source.sql", "aggregate_windows.sql", "chat_aggregate_windows.sql"),
)

Echo = Callable[[str], None]


def gold_outputs() -> tuple[catalog.Output, ...]:
    """The aggregation jobs' outputs kept in Iceberg (the gold tables); each is also in ClickHouse if declared so."""
    return tuple(catalog.output(name) for name in _gold_names())


def parse_tables(spec: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """Gold table names from a comma-separated string or a list; empty means all of them."""
    names = [n.strip() for n in (spec.split(",") if isinstance(spec, str) else spec or ()) if n.strip()]
    known = [o.name for o in gold_outputs()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise PlatformError(f"cannot backfill {', '.join(unknown)}: the backfilled tables are {', '.join(known)}")
    return tuple(names) or tuple(known)


def days(first: dt.date, last: dt.date) -> list[dt.date]:
    if last < first:
        raise PlatformError(f"backfill range ends ({last}) before it starts ({first})")
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


@dataclasses.dataclass(frozen=True)
class Plan:
    """One day's backfill: which tables, and the names this run stages them under."""

    day: dt.date
    tables: tuple[str, ...]
    run_id: str

    @classmethod
    def new(cls, day: dt.date, tables: tuple[str, ...]) -> "Plan":
        return cls(day, tables, f"{day:%Y%m%d}_{uuid.uuid4().hex[:8]}")

    @property
    def job_name(self) -> str:
        return f"backfill_aggregates_{self.run_id}"

    def staging(self, table: str) -> str:
        return f"{STAGING_PREFIX}{self.run_id}_{table}"

    def driver_args(self) -> tuple[str, ...]:
        targets = [a for t in self.tables for a in ("--target", f"{t}={self.staging(t)}")]
        return ("--name", self.job_name, "--first-day", self.day.isoformat(), "--end-day", (self.day + dt.timedelta(days=1)).isoformat(), *targets)

    def to_dict(self) -> dict[str, Any]:
        return {"day": self.day.isoformat(), "tables": list(self.tables), "run_id": self.run_id}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Plan":
        return cls(dt.date.fromisoformat(data["day"]), tuple(data["tables"]), data["run_id"])


def _day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc)
    return start, start + dt.timedelta(days=1)


def prepare(settings: Settings, day: dt.date, tables: tuple[str, ...]) -> Plan:
    """A new plan with its empty Iceberg staging tables; staging left by killed runs of the day is dropped."""
    from connectors.iceberg import load_catalog

    lake = load_catalog(settings)
    ns = settings.iceberg_namespace
    for _, name in lake.list_tables(ns):
        if name.startswith(f"{STAGING_PREFIX}{day:%Y%m%d}_"):
            lake.purge_table(f"{ns}.{name}")
    plan = Plan.new(day, tables)
    for table in tables:
        gold = lake.load_table(f"{ns}.{table}")
        lake.create_table(f"{ns}.{plan.staging(table)}", schema=gold.schema())
    return plan


def pipeline_cli(settings: Settings) -> str:
    """The main venv's `twitch-pipeline`: where PyFlink (and so `flink run`) is, which Airflow's venv lacks."""
    return settings.airflow_pipeline_cli or str(PROJECT_ROOT / ".venv" / "bin" / "twitch-pipeline")


def run_cli(settings: Settings, *args: str, timeout_s: float = 900) -> str:
    """Run a command of the main venv's CLI with these settings; its stdout, or an error with its stderr's end."""
    env = {**os.environ, **to_env(settings)}
    proc = subprocess.run([pipeline_cli(settings), *args], env=env, capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0:
        raise PlatformError(f"twitch-pipeline {' '.join(args[:2])} failed (exit {proc.returncode}): {proc.stderr.strip()[-1500:]}")
    return proc.stdout


def submit_driver(settings: Settings, driver: str, args: tuple[str, ...] = (), *, fresh: bool = True) -> str:
    """`twitch-pipeline submit`: in-process where PyFlink is installed, else through the main venv's CLI; the job id."""
    if importlib.util.find_spec("pyflink") is not None:
        from twitch_pipeline.jobs import submit

        return submit(settings, driver, list(args), resume=not fresh)
    out = run_cli(settings, "submit", *(["--fresh"] if fresh else []), driver, *args)
    return out.strip().rsplit(" ", 1)[-1]


def compute_local(settings: Settings, plan: Plan, timeout_s: float = 1800) -> str:
    """Run the backfill job on the local Flink cluster and wait until it FINISHED; its job id."""
    from twitch_pipeline.platform.flink import Flink

    job_id = submit_driver(settings, str(DRIVER), plan.driver_args())
    flink = Flink(settings)

    def finished() -> bool:
        state = flink.rest(f"/jobs/{job_id}")["state"]
        if state in ("FAILED", "CANCELED"):
            raise PlatformError(f"backfill job of {plan.day} is {state}: {settings.flink_rest}/#/job/completed/{job_id}/exceptions")
        return state == "FINISHED"

    wait_until(finished, timeout_s, f"backfill job {plan.job_name} to finish", interval_s=2)
    return job_id


def publish(settings: Settings, plan: Plan) -> dict[str, int]:
    """Swap the day's partition of every table for the staged rows; rows per table. Drops the staging tables."""
    from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan

    from connectors.clickhouse import clickhouse_client
    from connectors.iceberg import load_catalog

    lake = load_catalog(settings)
    ns = settings.iceberg_namespace
    start, end = _day_bounds(plan.day)
    day_filter = And(GreaterThanOrEqual("window_start", start.isoformat()), LessThan("window_start", end.isoformat()))
    outputs = {o.name: o for o in gold_outputs()}
    counts = {}
    with clickhouse_client(settings) as client:
        for table in plan.tables:
            staged = lake.load_table(f"{ns}.{plan.staging(table)}").scan().to_arrow()
            lake.load_table(f"{ns}.{table}").overwrite(staged, overwrite_filter=day_filter)
            if outputs[table].clickhouse:
                replace_clickhouse_partition(client, table, plan, staged)
            counts[table] = staged.num_rows
    discard(settings, plan)
    return counts


def replace_clickhouse_partition(client, table: str, plan: Plan, rows) -> None:
    """Load ``rows`` into a copy of ``table`` and move its day partition in with one ``REPLACE PARTITION``.

    The tables are ``PARTITION BY toDate(window_start)``; the replace is atomic for readers, and a day
    without rows (a copy without that partition) empties the day.
    """
    import pyarrow as pa

    staging = f"{table}__{plan.staging('')}".rstrip("_")
    client.command(f"DROP TABLE IF EXISTS `{staging}`")
    client.command(f"CREATE TABLE `{staging}` AS `{table}`")
    try:
        # ClickHouse's DateTime64(3) columns take milliseconds; the lake keeps microseconds of the same instants.
        rows = pa.table({name: (col.cast(pa.timestamp("ms", tz="UTC")) if pa.types.is_timestamp(col.type) else col) for name, col in zip(rows.column_names, rows.columns)})
        if rows.num_rows:
            client.insert_arrow(staging, rows)
        client.command(f"ALTER TABLE `{table}` REPLACE PARTITION '{plan.day.isoformat()}' FROM `{staging}`")
    finally:
        client.command(f"DROP TABLE IF EXISTS `{staging}`")


def discard(settings: Settings, plan: Plan) -> None:
    """Drop this run's Iceberg staging tables (data files included)."""
    from pyiceberg.exceptions import NoSuchTableError

    from connectors.iceberg import load_catalog

    lake = load_catalog(settings)
    for table in plan.tables:
        try:
            lake.purge_table(f"{settings.iceberg_namespace}.{plan.staging(table)}")
        except NoSuchTableError:
            pass


def backfill(settings: Settings, first: dt.date, last: dt.date, tables: tuple[str, ...], echo: Echo = print) -> dict[str, dict[str, int]]:
    """Backfill every day of [first, last] on the local cluster, one day after the other."""
    results = {}
    for day in days(first, last):
        plan = prepare(settings, day, tables)
        try:
            compute_local(settings, plan)
            results[day.isoformat()] = publish(settings, plan)
        except BaseException:
            discard(settings, plan)
            raise
        echo(f"  {day}  " + "  ".join(f"{t}={n}" for t, n in results[day.isoformat()].items()))
    return results


def register(subparsers: argparse._SubParsersAction) -> None:
    help_text = "recompute the minute aggregates of whole days from the Iceberg lake and swap them into ClickHouse and Iceberg"
    p = subparsers.add_parser("backfill", help=help_text, description=help_text)
    p.add_argument("--from", dest="first", required=True, type=dt.date.fromisoformat, metavar="DAY", help="first day (UTC, YYYY-MM-DD)")
    p.add_argument("--to", dest="last", required=True, type=dt.date.fromisoformat, metavar="DAY", help="last day, included")
    p.add_argument("--tables", default="", help=f"comma-separated gold tables (default: all: {', '.join(o.name for o in gold_outputs())})")
    p.set_defaults(handler=_run)


def _run(settings: Settings, args: argparse.Namespace) -> int:
    backfill(settings, args.first, args.last, parse_tables(args.tables))
    return 0
