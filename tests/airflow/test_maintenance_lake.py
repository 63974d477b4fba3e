"""Maintenance on a real (SQLite-backed) Iceberg catalog: compaction rewrites closed days only; the expiry check finds snapshots long past the retention."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pyarrow as pa
import pytest

from airflow_dags import maintenance_tasks
from connectors.iceberg import RETAIN_LAST_SNAPSHOTS
from twitch_pipeline.settings import load_settings

UTC = dt.timezone.utc
TODAY = dt.date(2026, 11, 29)


def test_compaction_and_the_snapshot_expiry_check(tmp_path):
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.transforms import DayTransform
    from pyiceberg.types import LongType, NestedField, StringType, TimestamptzType

    from connectors.iceberg import load_catalog

    settings = dataclasses.replace(load_settings(environ={}, dotenv=None), run_dir=tmp_path)
    (tmp_path / "iceberg" / "warehouse").mkdir(parents=True)
    lake = load_catalog(settings)
    lake.create_namespace(settings.iceberg_namespace)
    schema = Schema(NestedField(1, "window_start", TimestamptzType(), required=False), NestedField(2, "game_id", StringType(), required=False),
                    NestedField(3, "live_streams", LongType(), required=False))
    table = lake.create_table(f"{settings.iceberg_namespace}.game_minute_stats", schema=schema,
                              partition_spec=PartitionSpec(PartitionField(1, 1000, DayTransform(), "window_start_day")))
    arrow_schema = schema.as_arrow()
    closed, current = dt.datetime(2026, 11, 28, 10, tzinfo=UTC), dt.datetime(2026, 11, 29, 1, tzinfo=UTC)
    for i in range(maintenance_tasks.COMPACT_MIN_FILES):  # one small file per commit, as streaming checkpoints write them
        table.append(pa.Table.from_pylist([{"window_start": closed + dt.timedelta(minutes=i), "game_id": f"g{i}", "live_streams": i},
                                           {"window_start": current + dt.timedelta(minutes=i), "game_id": f"g{i}", "live_streams": i}], schema=arrow_schema))
    rows_before = sorted(table.scan().to_arrow().to_pylist(), key=str)

    done = maintenance_tasks.compact(settings, today=TODAY)

    table = lake.load_table(f"{settings.iceberg_namespace}.game_minute_stats")
    files = table.inspect.files().select(["partition"]).to_pylist()
    per_day = {}
    for f in files:
        per_day[f["partition"]["window_start_day"]] = per_day.get(f["partition"]["window_start_day"], 0) + 1
    assert sorted(per_day.values()) == [1, maintenance_tasks.COMPACT_MIN_FILES], "the closed day is one file, today's are untouched"
    assert list(done) == [f"{settings.iceberg_namespace}.game_minute_stats"]
    assert sorted(table.scan().to_arrow().to_pylist(), key=str) == rows_before

    for i in range(RETAIN_LAST_SNAPSHOTS):  # more snapshots than an expiry keeps however old
        table.append(pa.Table.from_pylist([{"window_start": current, "game_id": "g", "live_streams": i}], schema=arrow_schema))
    name = f"{settings.iceberg_namespace}.game_minute_stats"
    assert maintenance_tasks.check_snapshot_expiry(settings) == {name: len(lake.load_table(name).snapshots())}, "all young: nothing overdue"
    later = dt.datetime.now(UTC) + dt.timedelta(seconds=settings.lake_snapshot_retention_s) + maintenance_tasks.EXPIRY_GRACE + dt.timedelta(minutes=1)
    with pytest.raises(maintenance_tasks.MaintenanceProblem, match=rf"{name}: \d+ snapshots are past the retention"):
        maintenance_tasks.check_snapshot_expiry(settings, now=later)
