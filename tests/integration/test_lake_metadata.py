"""A lake table made by an earlier version is given the lake's table properties (real Iceberg catalog, pyiceberg).

Each commit writes a new metadata file listing every snapshot so far; kept, they grow quadratically with the commits,
and the streaming jobs commit every second. The jobs create their tables with ``LAKE_TABLE_PROPERTIES`` (that Flink's
Iceberg then deletes the old files is checked in test_enrich_job.py), and ``up`` gives them, through
``ensure_table_properties``, to a table made without.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from connectors.iceberg import LAKE_TABLE_PROPERTIES, ensure_table_properties, load_catalog
from twitch_pipeline.settings import Settings

pytestmark = pytest.mark.integration

SCHEMA = pa.schema([("id", pa.int64())])


def test_a_table_made_without_the_lake_properties_is_given_them_once(tmp_path: Path) -> None:
    settings = Settings(run_dir=tmp_path, iceberg_namespace="lake")
    (tmp_path / "iceberg" / "warehouse").mkdir(parents=True)
    catalog = load_catalog(settings)
    catalog.create_namespace("lake")
    catalog.create_table("lake.made_now", schema=SCHEMA, properties=LAKE_TABLE_PROPERTIES)
    catalog.create_table("lake.made_before", schema=SCHEMA).append(pa.table({"id": [1, 2]}, schema=SCHEMA))

    assert ensure_table_properties(catalog, "lake") == ["lake.made_before"]
    assert ensure_table_properties(catalog, "lake") == [], "nothing left to change"
    reloaded = load_catalog(settings).load_table("lake.made_before")
    assert {k: reloaded.properties.get(k) for k in LAKE_TABLE_PROPERTIES} == LAKE_TABLE_PROPERTIES
    assert reloaded.scan().to_arrow().column("id").to_pylist() == [1, 2], "its data is untouched"
