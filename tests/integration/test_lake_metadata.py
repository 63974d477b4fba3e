"""The lake's upkeep, on a real Iceberg catalog (pyiceberg, and Iceberg's Java expiry): properties, snapshot expiry.

A lake table made by an earlier version is given the lake's table properties.

Each commit writes a new metadata file listing every snapshot so far; kept, they grow quadratically with the commits,
and the streaming jobs commit every second. The jobs create their tables with ``LAKE_TABLE_PROPERTIES`` (that Flink's
Iceberg then deletes the old files is checked in test_enrich_job.py), and ``up`` gives them, through
``ensure_table_properties``, to a table made without.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pyarrow as pa
import pytest

from connectors.iceberg import LAKE_TABLE_PROPERTIES, RETAIN_LAST_SNAPSHOTS, ensure_table_properties, load_catalog
from twitch_pipeline.errors import TransientError, wait_until
from twitch_pipeline.platform.iceberg import expire_snapshots
from twitch_pipeline.settings import Settings

pytestmark = pytest.mark.integration

SCHEMA = pa.schema([("id", pa.int64())])


def test_a_table_made_without_the_lake_properties_is_given_them_once(tmp_path: Path) -> None:
    settings, catalog = _lake(tmp_path)
    catalog.create_table("lake.made_now", schema=SCHEMA, properties=LAKE_TABLE_PROPERTIES)
    catalog.create_table("lake.made_before", schema=SCHEMA).append(pa.table({"id": [1, 2]}, schema=SCHEMA))

    assert ensure_table_properties(catalog, "lake") == ["lake.made_before"]
    assert ensure_table_properties(catalog, "lake") == [], "nothing left to change"
    reloaded = load_catalog(settings).load_table("lake.made_before")
    assert {k: reloaded.properties.get(k) for k in LAKE_TABLE_PROPERTIES} == LAKE_TABLE_PROPERTIES
    assert reloaded.scan().to_arrow().column("id").to_pylist() == [1, 2], "its data is untouched"


def _lake(tmp_path: Path, **overrides) -> tuple[Settings, object]:
    settings = Settings(run_dir=tmp_path, iceberg_namespace="lake", **overrides)
    (tmp_path / "iceberg" / "warehouse").mkdir(parents=True)
    catalog = load_catalog(settings)
    catalog.create_namespace("lake")
    return settings, catalog


def _batch(start: int) -> pa.Table:
    return pa.table({"id": list(range(start, start + 10))}, schema=SCHEMA)


def _path(uri: str) -> Path:
    return Path(uri.removeprefix("file:"))


def test_expiry_keeps_the_newest_snapshots_and_deletes_the_files_only_the_expired_ones_used(tmp_path: Path) -> None:
    # Retention 1 ms: every snapshot is old, so the newest RETAIN_LAST_SNAPSHOTS are what stays.
    settings, catalog = _lake(tmp_path, lake_snapshot_retention_s=0.001)
    table = catalog.create_table("lake.t", schema=SCHEMA, properties=LAKE_TABLE_PROPERTIES)
    for i in range(15):
        table.append(_batch(i * 10))
    replaced = [_path(f.file.file_path) for f in table.scan().plan_files()]
    table.overwrite(table.scan().to_arrow())  # a compaction: one file in place of the fifteen (two snapshots: delete, append)
    for i in range(15, 15 + RETAIN_LAST_SNAPSHOTS):
        table.append(_batch(i * 10))
    table = catalog.load_table("lake.t")
    before = {s.snapshot_id: _path(s.manifest_list) for s in table.snapshots()}
    current = table.current_snapshot().snapshot_id

    assert expire_snapshots(settings) == [{"table": "lake.t", "expired": len(before) - RETAIN_LAST_SNAPSHOTS, "snapshots": RETAIN_LAST_SNAPSHOTS}]

    table = load_catalog(settings).load_table("lake.t")
    kept = {s.snapshot_id for s in table.snapshots()}
    assert len(kept) == RETAIN_LAST_SNAPSHOTS and current in kept
    assert sorted(table.scan().to_arrow().column("id").to_pylist()) == list(range(10 * (15 + RETAIN_LAST_SNAPSHOTS)))
    assert all(path.exists() for sid, path in before.items() if sid in kept)
    assert not any(path.exists() for sid, path in before.items() if sid not in kept), "the expired snapshots' manifest lists are deleted"
    assert replaced and not any(path.exists() for path in replaced), "the data files the compaction replaced are deleted"
    assert expire_snapshots(settings) == [{"table": "lake.t", "expired": 0, "snapshots": RETAIN_LAST_SNAPSHOTS}]


def test_expiry_while_a_writer_commits_loses_nothing(tmp_path: Path) -> None:
    """A streaming sink keeps committing while the expiry runs: whichever commit loses retries on the table as it
    now is (Iceberg's expiry does by itself; the writer here, like Flink's committer, on CommitFailedException)."""
    from pyiceberg.exceptions import CommitFailedException

    settings, catalog = _lake(tmp_path, lake_snapshot_retention_s=0.001)
    catalog.create_table("lake.t", schema=SCHEMA, properties=LAKE_TABLE_PROPERTIES)
    stop, conflicts, appended = threading.Event(), [], []

    def write() -> None:
        writer = load_catalog(settings)
        while not stop.wait(0.1):  # a sink commits at each checkpoint: ten a second here, ten times the pipeline's rate
            batch = len(appended)
            while True:
                try:
                    writer.load_table("lake.t").append(_batch(batch * 10))
                    break
                except CommitFailedException:
                    conflicts.append(batch)
            appended.append(batch)

    thread = threading.Thread(target=write)
    thread.start()
    try:
        wait_until(lambda: len(appended) > RETAIN_LAST_SNAPSHOTS, timeout_s=60, what="the writer's first commits")
        expired = sum(t["expired"] for _ in range(3) for t in expire_snapshots(settings))
    finally:
        stop.set()
        thread.join()

    table = load_catalog(settings).load_table("lake.t")
    assert sorted(table.scan().to_arrow().column("id").to_pylist()) == list(range(10 * len(appended))), "every committed row is there once"
    assert expired > 0 and len(table.snapshots()) <= len(appended) - expired


def test_a_table_that_cannot_be_expired_does_not_hold_up_the_others(tmp_path: Path) -> None:
    settings, catalog = _lake(tmp_path, lake_snapshot_retention_s=0.001)
    for name in ("broken", "fine"):
        table = catalog.create_table(f"lake.{name}", schema=SCHEMA, properties=LAKE_TABLE_PROPERTIES)
        for i in range(RETAIN_LAST_SNAPSHOTS + 2):
            table.append(_batch(i * 10))
    _path(catalog.load_table("lake.broken").metadata_location).unlink()  # its current metadata file is gone

    with pytest.raises(TransientError, match=r"lake snapshot expiry failed for lake\.broken: .*NotFoundException"):
        expire_snapshots(settings)
    assert len(load_catalog(settings).load_table("lake.fine").snapshots()) == RETAIN_LAST_SNAPSHOTS, "the other table was expired"


def test_a_namespace_that_does_not_exist_is_a_clear_error(tmp_path: Path) -> None:
    settings, _ = _lake(tmp_path)
    with pytest.raises(TransientError, match="NoSuchNamespaceException"):
        expire_snapshots(dataclasses.replace(settings, iceberg_namespace="nowhere"))
