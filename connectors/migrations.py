"""Versioned ClickHouse schema: ``connectors/clickhouse_migrations/NNN_name.sql``, applied in order, once.

``apply_migrations`` runs after every ``twitch-pipeline up`` (a POST_UP_HOOK) and is idempotent: the
``schema_migrations`` table in the project's database records each applied version with a checksum
of its file. A file may hold several statements separated by ``;``. ClickHouse DDL is not
transactional, so write statements that can be re-run (``IF NOT EXISTS``): if statement 2 of 3 fails,
statement 1 stays applied and the whole file runs again next time. Editing a file that has already
been applied is refused — add a new migration instead.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from connectors.clickhouse import clickhouse_client, endpoint
from connectors.sql_script import split_statements
from twitch_pipeline.errors import PlatformError
from twitch_pipeline.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "clickhouse_migrations"
_FILE_NAME = re.compile(r"^(\d{3,})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self) -> list[str]:
        return split_statements(self.sql)


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every ``*.sql`` in version order; a badly named file or a duplicate version is an error, not skipped."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise PlatformError(f"migration {path} is not named NNN_lowercase_name.sql: rename it")
        version = int(match.group(1))
        if version in found:
            raise PlatformError(f"migrations {found[version].name} and {path.name} share version {version}: renumber one")
        found[version] = Migration(version, path.name, path.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


def apply_migrations(settings: Settings, directory: Path = MIGRATIONS_DIR) -> str:
    """Create the project database and apply pending migrations; returns the summary line for ``up``."""
    migrations = load_migrations(directory)
    database = endpoint(settings).database
    with clickhouse_client(settings, database="") as admin:
        admin.command(f"CREATE DATABASE IF NOT EXISTS {_identifier(database)}")
    with clickhouse_client(settings) as client:
        client.command(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, name String, checksum String, "
            "applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = MergeTree ORDER BY version"
        )
        applied = dict(client.query("SELECT version, checksum FROM schema_migrations").result_rows)
        ran = []
        for migration in migrations:
            if migration.version in applied:
                if applied[migration.version] != migration.checksum:
                    raise PlatformError(
                        f"migration {migration.name} changed after it was applied to {database}: "
                        "revert the edit and add a new migration instead"
                    )
                continue
            for statement in migration.statements():
                try:
                    client.command(statement)
                except Exception as exc:  # noqa: BLE001 - report which file failed, with ClickHouse's message
                    raise PlatformError(f"migration {migration.name} failed: {_first_line(exc)}") from None
            client.insert("schema_migrations", [[migration.version, migration.name, migration.checksum]],
                          column_names=["version", "name", "checksum"])
            ran.append(migration.name)
    latest = migrations[-1].version if migrations else 0
    if ran:
        return f"clickhouse  migrated {database} to version {latest} ({', '.join(ran)})"
    return f"clickhouse  schema of {database} up to date (version {latest})"


def _identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
