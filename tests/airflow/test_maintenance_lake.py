"""Maintenance on a real (SQLite-backed) Iceberg catalog: compaction rewrites closed days only, expiry keeps the current snapshot."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pyarrow as pa

from airflow_dags import maintenance_tasks
from twitch_pipeline.settings import load_settings

UTC = dt.timezone.utc
TODAY = dt.date(2026, 11, 29)


def test_compaction_and_snapshot_expiry(tmp_path):
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

    snapshots = len(table.snapshots())
    expired = maintenance_tasks.expire_snapshots(settings, retention=dt.timedelta(0), now=dt.datetime.now(UTC) + dt.timedelta(seconds=1))
    table = lake.load_table(f"{settings.iceberg_namespace}.game_minute_stats")
    assert expired[f"{settings.iceberg_namespace}.game_minute_stats"] == snapshots - 1
    assert [s.snapshot_id for s in table.snapshots()] == [table.current_snapshot().snapshot_id]
    assert sorted(table.scan().to_arrow().to_pylist(), key=str) == rows_before
