"""The Iceberg catalog: locally no process, just the SQLite catalog file and the warehouse; or an external REST catalog.

With ``TWITCH_PIPELINE_ICEBERG_CATALOG_TYPE=rest`` the server (and its object store) run elsewhere, like an
external Kafka: `up` only creates the namespace there and `status` checks that it answers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from connectors import iceberg
from connectors.iceberg import ensure_table_properties, load_catalog
from twitch_pipeline.platform.component import Component, ensure_dir, require_java
from twitch_pipeline.settings import Settings


class Iceberg(Component):
    name = "iceberg"

    def start(self) -> None:
        s = self.settings
        if not s.iceberg_uri:
            ensure_dir(self.run_dir / "iceberg")
        if not s.iceberg_warehouse and s.iceberg_catalog_type == "jdbc":
            ensure_dir(self.run_dir / "iceberg" / "warehouse")
        catalog = load_catalog(s)
        catalog.create_namespace_if_not_exists(s.iceberg_namespace)
        # a lake made by an earlier version: from now on its commits delete the old metadata files too
        ensure_table_properties(catalog, s.iceberg_namespace)

    def running(self) -> bool:
        return (self.run_dir / "iceberg").is_dir() or bool(self.settings.iceberg_uri)

    def health(self) -> dict[str, Any]:
        s = self.settings
        entry: dict[str, Any] = {"healthy": False, "catalog": s.iceberg_catalog, "type": s.iceberg_catalog_type, "uri": s.iceberg_catalog_uri,
                                 "warehouse": s.iceberg_warehouse_uri}
        if not self.running():
            return entry
        try:
            namespaces = [".".join(ns) for ns in load_catalog(s).list_namespaces()]
        except Exception:  # noqa: BLE001 - any catalog failure = unhealthy
            return entry
        entry["namespaces"] = namespaces
        entry["healthy"] = s.iceberg_namespace in namespaces
        return entry


def expire_snapshots(settings: Settings) -> list[dict]:
    """:func:`connectors.iceberg.expire_snapshots` on the jars the Flink cluster runs on: the image's Flink lib in a
    container (``FLINK_HOME``, where the project's jars are installed), else the run directory's."""
    from twitch_pipeline.platform.flink import Flink

    home = os.environ.get("FLINK_HOME")
    if home and _has_iceberg(Path(home) / "lib"):
        lib = Path(home) / "lib"
    else:
        flink = Flink(settings)
        lib = flink.root / "lib"
        if not _has_iceberg(lib):
            flink.prepare()  # a platform not started yet
    return iceberg.expire_snapshots(settings, require_java(), lib)


def _has_iceberg(lib: Path) -> bool:
    return any(lib.glob("iceberg-flink-runtime*.jar"))
