"""The Iceberg catalog, as Flink SQL and pyiceberg both see it: built here, from the settings, for both.

Two kinds (``TWITCH_PIPELINE_ICEBERG_CATALOG_TYPE``):

- ``jdbc`` (the local default): a JDBC catalog on SQLite plus a file warehouse in the run directory. Both sides must
  use the same catalog *name*: the JDBC catalog keys every row by it, so a mismatch silently shows an empty catalog.
- ``rest``: an Iceberg REST catalog server (``apache/iceberg-rest-fixture`` in the cluster), whose tables live in an
  object store (MinIO in dev, S3 in prod).

A warehouse on S3 (``s3://``, or any S3 endpoint set) is read and written through Iceberg's ``S3FileIO`` in Flink (the
``iceberg-aws-bundle`` jar) and through pyarrow's S3 filesystem in pyiceberg, with the same endpoint, region and
keys. Keys left empty mean the AWS default credential chain (``AWS_ACCESS_KEY_ID``, an IAM role) on both sides.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from twitch_pipeline.errors import ConfigurationError, TransientError
from twitch_pipeline.settings import Settings

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

S3_FILE_IO = "org.apache.iceberg.aws.s3.S3FileIO"

# Every lake table's properties (the jobs' CREATE TABLE; :func:`ensure_table_properties` for tables made before).
# A streaming sink commits at every checkpoint, a second, and each commit writes a new metadata file that lists every
# snapshot so far (~1.1 KB each). Iceberg keeps the old files unless told otherwise, so they grow with the square of
# the commits: 132 files, 10 MB, after 131 commits of game_streams_enriched in a benchmark run; ~7 GB per table after
# an hour. With these Iceberg deletes all but the last 10 at each commit (11 files in the same run).
METADATA_FILE_PROPERTIES = {"write.metadata.delete-after-commit.enabled": "true", "write.metadata.previous-versions-max": "10"}
LAKE_TABLE_PROPERTIES = {"format-version": "2", **METADATA_FILE_PROPERTIES}


def _sqlalchemy_uri(settings: Settings) -> str:
    """pyiceberg speaks SQLAlchemy URLs; Flink's JdbcCatalog speaks JDBC URLs. Same database."""
    jdbc = settings.iceberg_catalog_uri
    if jdbc.startswith("jdbc:sqlite:"):
        return "sqlite:///" + jdbc.removeprefix("jdbc:sqlite:")
    if jdbc.startswith("jdbc:postgresql:"):
        return "postgresql+psycopg2:" + jdbc.removeprefix("jdbc:postgresql:")
    return jdbc.removeprefix("jdbc:")


def on_s3(settings: Settings) -> bool:
    """Whether the lake's files are in an object store (a REST catalog's may be, whatever warehouse the client names)."""
    return settings.iceberg_warehouse.startswith(("s3://", "s3a://")) or bool(settings.iceberg_s3_endpoint)


def _s3_properties(settings: Settings) -> dict[str, str]:
    """The ``s3.*`` properties Iceberg's Java S3FileIO and pyiceberg name alike; only those that are set."""
    return {key: value for key, value in {
        "s3.endpoint": settings.iceberg_s3_endpoint,
        "s3.access-key-id": settings.iceberg_s3_access_key_id,
        "s3.secret-access-key": settings.iceberg_s3_secret_access_key,
    }.items() if value}


def pyiceberg_properties(settings: Settings) -> dict[str, str]:
    """Properties of the pyiceberg catalog (``uri``, ``warehouse``, FileIO's ``s3.*``)."""
    rest = settings.iceberg_catalog_type == "rest"
    props = {"uri": settings.iceberg_uri if rest else _sqlalchemy_uri(settings)}
    if settings.iceberg_warehouse_uri:
        props["warehouse"] = settings.iceberg_warehouse_uri
    if on_s3(settings):
        props.update(_s3_properties(settings))
        if settings.iceberg_s3_region:
            props["s3.region"] = settings.iceberg_s3_region
        # pyarrow's S3 filesystem addresses buckets by path whenever an endpoint is given; it has no switch for it.
    return props


def load_catalog(settings: Settings) -> "Catalog":
    """The pyiceberg catalog (a JDBC one creates its SQLite schema on first use; a REST one asks the server now)."""
    props = pyiceberg_properties(settings)
    if settings.iceberg_catalog_type == "rest":
        from pyiceberg.catalog.rest import RestCatalog

        return RestCatalog(settings.iceberg_catalog, **props)
    from pyiceberg.catalog.sql import SqlCatalog

    return SqlCatalog(settings.iceberg_catalog, **props)


def ensure_table_properties(catalog: "Catalog", namespace: str, attempts: int = 5) -> list[str]:
    """Give every table of ``namespace`` the :data:`METADATA_FILE_PROPERTIES` it lacks (a format version only an
    upgrade changes); the names of the tables changed. A commit that loses to a running job's (the catalog takes one
    at a time) is retried on the table as it now is."""
    return [".".join(identifier) for identifier in catalog.list_tables(namespace) if _set_missing(catalog, identifier, attempts)]


def _set_missing(catalog: "Catalog", identifier: tuple[str, ...], attempts: int) -> bool:
    from pyiceberg.exceptions import CommitFailedException

    for attempt in range(attempts):
        table = catalog.load_table(identifier)
        missing = {k: v for k, v in METADATA_FILE_PROPERTIES.items() if table.properties.get(k) != v}
        if not missing:
            return False
        try:
            with table.transaction() as tx:
                tx.set_properties(missing)
            return True
        except CommitFailedException:
            if attempt == attempts - 1:
                raise
    return False


def flink_catalog_options(settings: Settings) -> dict[str, str]:
    """``WITH`` options of the Flink ``CREATE CATALOG``: Iceberg's Flink catalog factory, on the same catalog."""
    if settings.iceberg_catalog_type == "rest":
        options = {"type": "iceberg", "catalog-type": "rest", "uri": settings.iceberg_uri}
    else:
        options = {
            "type": "iceberg",
            # `catalog-type` knows only hive, hadoop and rest: a JDBC catalog is named by its class.
            "catalog-impl": "org.apache.iceberg.jdbc.JdbcCatalog",
            "uri": settings.iceberg_catalog_uri,
            "jdbc.schema-version": "V1",
            # SQLite allows one writer at a time: wait for the lock instead of failing a commit, and use WAL
            # so pyiceberg readers never block Flink's committer.
            "jdbc.busy_timeout": "30000",
            "jdbc.journal_mode": "WAL",
            # The catalog tables exist already (`up` creates them through pyiceberg). Letting every sink initialise
            # them leaves a read open on a pooled SQLite connection, whose next commit then fails with
            # SQLITE_BUSY_SNAPSHOT as soon as another sink has committed: fatal with several Iceberg sinks per job.
            "jdbc.init-catalog-tables": "false",
        }
    if settings.iceberg_warehouse_uri:
        options["warehouse"] = settings.iceberg_warehouse_uri
    if on_s3(settings):
        options["io-impl"] = S3_FILE_IO
        options.update(_s3_properties(settings))
        if settings.iceberg_s3_path_style_access:
            options["s3.path-style-access"] = "true"
        if settings.iceberg_s3_region:
            options["client.region"] = settings.iceberg_s3_region
    return options


#: The lake's snapshot expiry, a Java main in jvm/ run on the Flink lib's Iceberg (see its comment for why not pyiceberg).
EXPIRE_SNAPSHOTS_MAIN = "io.twitchpipeline.lake.ExpireSnapshots"
#: Snapshots an expiry keeps however old they are: a restarted Flink sink finds its last committed checkpoint in the
#: newest of its own, and a reader that just planned a scan reads the snapshot it planned.
RETAIN_LAST_SNAPSHOTS = 10


def expire_snapshots(settings: Settings, java: str, lib_dir: Path, timeout_s: float = 600.0) -> list[dict]:
    """Expire every lake table's snapshots older than ``lake_snapshot_retention_s`` (the newest
    :data:`RETAIN_LAST_SNAPSHOTS` always stay) and delete the files only they referenced; one
    ``{"table", "expired", "snapshots"}`` per table.

    Runs :data:`EXPIRE_SNAPSHOTS_MAIN` with ``java`` on the jars of ``lib_dir`` (the Flink cluster's lib: Iceberg, its
    file systems, the JDBC driver and this project's jar). Iceberg retries a commit that loses to a running job's.
    """
    cutoff_ms = int((time.time() - settings.lake_snapshot_retention_s) * 1000)
    # Properties on standard input, not the command line, which any process can read (S3 keys). C1 only: a run with
    # nothing to expire took 1.0-1.4 CPU-s against 2.0-2.3 with C2 compiling (10 tables, three runs each).
    options = {("type" if k == "catalog-type" else k): v for k, v in flink_catalog_options(settings).items() if k != "type"}
    properties = "".join(f"{k}={_properties_escape(v)}\n" for k, v in options.items())
    # At the lowest CPU priority where `nice` exists: the pipeline's tasks come first on a machine it fills.
    nice = ["nice", "-n", "19"] if shutil.which("nice") else []
    command = [*nice, java, "-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp", f"{lib_dir}/*", EXPIRE_SNAPSHOTS_MAIN, settings.iceberg_catalog,
               settings.iceberg_namespace, str(cutoff_ms), str(RETAIN_LAST_SNAPSHOTS)]
    try:
        done = subprocess.run(command, input=properties, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as err:
        raise TransientError(f"lake snapshot expiry did not finish within {timeout_s:.0f} s") from err
    tables = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    failed = [f"{t['table']}: {t['error'][:300]}" for t in tables if "error" in t]
    if failed:
        raise TransientError("lake snapshot expiry failed for " + "; ".join(failed))
    if done.returncode != 0:
        errors = [line.strip() for line in done.stderr.splitlines() if "Exception" in line or "Error" in line]
        reason = (errors or done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[0]
        if "ClassNotFoundException" in done.stderr or "NoClassDefFoundError" in done.stderr:
            raise ConfigurationError(f"lake snapshot expiry: {reason[:300]} (no Iceberg jars in {lib_dir}? run `make jars`)")
        raise TransientError(f"lake snapshot expiry failed: {reason[:300]}")
    return tables


def _properties_escape(value: str) -> str:
    """A value as java.util.Properties reads it back (backslash escapes; no line breaks)."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def flink_catalog_ddl(settings: Settings) -> str:
    """`CREATE CATALOG` for Flink SQL, pointing at the very same catalog as :func:`load_catalog`."""
    options = ", ".join(f"{_sql_string(k)}={_sql_string(v)}" for k, v in flink_catalog_options(settings).items())
    return f"CREATE CATALOG IF NOT EXISTS `{settings.iceberg_catalog}` WITH ({options})"
