"""The maintenance DAG's steps, one function each: callable from a shell too (``python -c``), and testable.

Each returns what it did or found; a check that finds a problem raises :class:`MaintenanceProblem` listing
every problem at once, so one run says all that is wrong.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from connectors import catalog
from twitch_pipeline.settings import Settings

#: An expiry this late (past the retention) has stopped: it runs every few minutes.
EXPIRY_GRACE = dt.timedelta(hours=1)
#: A closed day partition with at least this many data files is rewritten into one.
COMPACT_MIN_FILES = 8
#: More active parts than this in one ClickHouse partition means merges are falling behind.
MAX_PARTS_PER_PARTITION = 300


class MaintenanceProblem(RuntimeError):
    """Something maintenance checked is not as the catalog or the migrations declare."""


def lake_tables(settings: Settings) -> list[str]:
    return [f"{settings.iceberg_namespace}.{o.name}" for o in catalog.OUTPUTS if o.iceberg]


def _existing(lake, names: list[str]):
    from pyiceberg.exceptions import NoSuchTableError

    for name in names:
        try:
            yield name, lake.load_table(name)
        except NoSuchTableError:
            continue


def check_snapshot_expiry(settings: Settings, now: dt.datetime | None = None) -> dict[str, int]:
    """Every lake table's old snapshots are being expired: none but the newest ``RETAIN_LAST_SNAPSHOTS`` is older
    than ``TWITCH_PIPELINE_LAKE_SNAPSHOT_RETENTION_S`` plus :data:`EXPIRY_GRACE`; the snapshots per table.

    The expiry runs beside the pipeline, every few minutes (the local supervisor; on Kubernetes the
    ``lake-expire-snapshots`` CronJob), with Iceberg's Java action, which also deletes the files only expired
    snapshots used. A daily expiry would be too late: each commit rewrites the list of every snapshot kept.
    """
    from connectors.iceberg import RETAIN_LAST_SNAPSHOTS, load_catalog

    limit = (now or dt.datetime.now(dt.timezone.utc)) - dt.timedelta(seconds=settings.lake_snapshot_retention_s) - EXPIRY_GRACE
    problems, found = [], {}
    for name, table in _existing(load_catalog(settings), lake_tables(settings)):
        snapshots = sorted(table.snapshots(), key=lambda s: s.timestamp_ms)
        overdue = [s for s in snapshots[:-RETAIN_LAST_SNAPSHOTS] if s.timestamp_ms < limit.timestamp() * 1000]
        found[name] = len(snapshots)
        if overdue:
            problems.append(f"{name}: {len(overdue)} snapshots are past the retention by more than {EXPIRY_GRACE} (is the expiry running? "
                            "locally the supervisor of `twitch-pipeline start`/`run` runs it, on Kubernetes the lake-expire-snapshots CronJob; "
                            "`twitch-pipeline expire-snapshots` runs it once)")
    if problems:
        raise MaintenanceProblem("Iceberg:\n  " + "\n  ".join(problems))
    return found


def _partition_filter(table, partition: dict[str, Any]):
    """A row filter selecting exactly one partition of a table partitioned by day(ts) or by a DATE column."""
    from pyiceberg.expressions import And, EqualTo, GreaterThanOrEqual, LessThan
    from pyiceberg.transforms import DayTransform, IdentityTransform

    (field,) = table.spec().fields
    column = table.schema().find_field(field.source_id).name
    value = partition[field.name]
    day = value if isinstance(value, dt.date) else dt.date(1970, 1, 1) + dt.timedelta(days=int(value))
    if isinstance(field.transform, DayTransform):
        start = dt.datetime.combine(day, dt.time(), dt.timezone.utc)
        return day, And(GreaterThanOrEqual(column, start.isoformat()), LessThan(column, (start + dt.timedelta(days=1)).isoformat()))
    if isinstance(field.transform, IdentityTransform):
        return day, EqualTo(column, day.isoformat())
    raise MaintenanceProblem(f"{table.name()}: cannot compact a partition by {field.transform}")


def compact(settings: Settings, today: dt.date | None = None, min_files: int = COMPACT_MIN_FILES) -> dict[str, list[str]]:
    """Rewrite each closed day partition holding ``min_files`` or more data files into one file.

    One atomic overwrite per partition (delete the old files and add the new one in one commit), so readers
    see the same rows throughout. Today's partitions are left alone: the streaming jobs still append there.
    The partition is read into memory: right for the aggregates' days; at Twitch scale the enriched table's
    days want Iceberg's JVM ``RewriteDataFilesAction`` instead (docs/airflow.md).
    """
    from connectors.iceberg import load_catalog

    today = today or dt.datetime.now(dt.timezone.utc).date()
    done: dict[str, list[str]] = {}
    for name, table in _existing(load_catalog(settings), lake_tables(settings)):
        if table.spec().is_unpartitioned() or table.current_snapshot() is None:
            continue
        files = table.inspect.files().select(["partition", "content"]).to_pylist()
        counts: dict[tuple, int] = {}
        for f in files:
            if f["content"] == 0:  # data files (not delete files)
                key = tuple(sorted(f["partition"].items()))
                counts[key] = counts.get(key, 0) + 1
        for key, n in sorted(counts.items()):
            if n < min_files:
                continue
            day, row_filter = _partition_filter(table, dict(key))
            if day >= today:
                continue
            rows = table.scan(row_filter=row_filter).to_arrow()
            table.overwrite(rows, overwrite_filter=row_filter)
            done.setdefault(name, []).append(f"{day}: {n} files -> 1 ({rows.num_rows} rows)")
    return done


def check_clickhouse(settings: Settings, now: dt.datetime | None = None) -> dict[str, dict[str, Any]]:
    """Each sink table has a partition key and the TTL its migration declares; no partition outlived the TTL or has too many parts."""
    from connectors.clickhouse import clickhouse_client

    today = (now or dt.datetime.now(dt.timezone.utc)).date()
    problems, found = [], {}
    with clickhouse_client(settings) as client:
        for out in catalog.sink_outputs():
            rows = client.query("SELECT partition_key, engine_full FROM system.tables WHERE database = currentDatabase() AND name = %(t)s",
                                parameters={"t": out.table}).result_rows
            if not rows:
                problems.append(f"{out.table}: table missing (run `twitch-pipeline up`, which applies the migrations)")
                continue
            partition_key, engine = rows[0]
            ttl = re.search(r"TTL .*?toInterval(Day|Month)\((\d+)\)", engine)
            if not partition_key:
                problems.append(f"{out.table}: not partitioned")
            if not ttl:
                problems.append(f"{out.table}: no TTL")
                continue
            ttl_days = int(ttl.group(2)) * (30 if ttl.group(1) == "Month" else 1)
            parts = client.query("SELECT partition, count() FROM system.parts WHERE database = currentDatabase() AND table = %(t)s AND active "
                                 "GROUP BY partition ORDER BY partition", parameters={"t": out.table}).result_rows
            found[out.table] = {"partition_key": partition_key, "ttl_days": ttl_days, "partitions": len(parts)}
            for partition, count in parts:
                if count > MAX_PARTS_PER_PARTITION:
                    problems.append(f"{out.table}: partition {partition} has {count} active parts (merges behind)")
                day = _partition_day(partition)
                # A day is dropped once all its rows passed the TTL; a day's grace lets the TTL merge run.
                if day is not None and day < today - dt.timedelta(days=ttl_days + 1):
                    problems.append(f"{out.table}: partition {partition} is older than the {ttl_days}-day TTL (TTL merges not running?)")
    if problems:
        raise MaintenanceProblem("ClickHouse:\n  " + "\n  ".join(problems))
    return found


def _partition_day(partition: str) -> dt.date | None:
    digits = partition.strip("'").replace("-", "")
    return dt.datetime.strptime(digits, "%Y%m%d").date() if re.fullmatch(r"\d{8}", digits) else None


def check_kafka_retention(settings: Settings, timeout_s: float = 30.0) -> dict[str, dict[str, str]]:
    """Every topic's cleanup.policy and retention.ms on the broker are the catalog's."""
    from confluent_kafka.admin import ConfigResource

    from connectors.kafka import admin_client

    admin = admin_client(settings)
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    problems, found = [], {}
    wanted = {t.name: t.config() for t in catalog.TOPICS}
    missing = sorted(set(wanted) - existing)
    problems += [f"{name}: topic missing" for name in missing]
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in wanted if name in existing]
    for resource, future in admin.describe_configs(resources).items():
        actual = {k: v.value for k, v in future.result(timeout=timeout_s).items()}
        found[resource.name] = {k: actual.get(k) for k in wanted[resource.name]}
        for key, value in wanted[resource.name].items():
            if actual.get(key) != value:
                problems.append(f"{resource.name}: {key}={actual.get(key)} on the broker, {value} in the catalog")
    if problems:
        raise MaintenanceProblem("Kafka topic configs differ from connectors/catalog.py:\n  " + "\n  ".join(problems))
    return found
