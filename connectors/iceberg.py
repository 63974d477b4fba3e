"""The Iceberg catalog, as Flink SQL and pyiceberg both see it.

Locally it is a JDBC catalog on SQLite plus a file warehouse in the run directory; in production a
REST catalog and an object store. Both sides must use the same catalog *name*: the JDBC catalog keys
every row by it, so a mismatch silently shows an empty catalog.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twitch_pipeline.settings import Settings

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog


def _sqlalchemy_uri(settings: Settings) -> str:
    """pyiceberg speaks SQLAlchemy URLs; Flink's JdbcCatalog speaks JDBC URLs. Same database."""
    jdbc = settings.iceberg_catalog_uri
    if jdbc.startswith("jdbc:sqlite:"):
        return "sqlite:///" + jdbc.removeprefix("jdbc:sqlite:")
    if jdbc.startswith("jdbc:postgresql:"):
        return "postgresql+psycopg2:" + jdbc.removeprefix("jdbc:postgresql:")
    return jdbc.removeprefix("jdbc:")


def load_catalog(settings: Settings) -> "Catalog":
    """The pyiceberg catalog (creates the SQLite schema on first use)."""
    from pyiceberg.catalog.sql import SqlCatalog

    return SqlCatalog(
        settings.iceberg_catalog,
        uri=_sqlalchemy_uri(settings),
        warehouse=settings.iceberg_warehouse_uri,
    )


def flink_catalog_ddl(settings: Settings) -> str:
    """`CREATE CATALOG` for Flink SQL, pointing at the very same catalog."""
    return (
        f"CREATE CATALOG IF NOT EXISTS `{settings.iceberg_catalog}` WITH ("
        "'type'='iceberg', "
        "'catalog-impl'='org.apache.iceberg.jdbc.JdbcCatalog', "
        f"'uri'='{settings.iceberg_catalog_uri}', "
        f"'warehouse'='{settings.iceberg_warehouse_uri}', "
        "'jdbc.schema-version'='V1', "
        # SQLite allows one writer at a time: wait for the lock instead of failing a commit, and use WAL
        # so pyiceberg readers never block Flink's committer.
        "'jdbc.busy_timeout'='30000', 'jdbc.journal_mode'='WAL', "
        # The catalog tables exist already (`up` creates them through pyiceberg). Letting every sink initialise
        # them leaves a read open on a pooled SQLite connection, whose next commit then fails with
        # SQLITE_BUSY_SNAPSHOT as soon as another sink has committed: fatal with several Iceberg sinks per job.
        "'jdbc.init-catalog-tables'='false')"
    )
