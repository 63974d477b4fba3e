"""What every job driver shares: a configured TableEnvironment and SQL loaded from ``sql/`` by name.

A driver builds its environment with :func:`table_env`, then runs ``.sql`` files through
:func:`execute_script`. The SQL itself never changes between modes: ``bounded=True`` only switches
the Kafka sources to stop at the offsets present when the job starts (tests and backfills), while the
streaming default reads forever.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from connectors.iceberg import flink_catalog_ddl
from connectors.sql_script import split_statements
from connectors.topics import HEARTBEAT_KEY
from twitch_pipeline.settings import Settings

if TYPE_CHECKING:
    from pyflink.table import StatementSet, TableEnvironment, TableResult

SQL_DIR = Path(__file__).resolve().parent / "sql"


def table_env(settings: Settings, job_name: str, *, bounded: bool = False) -> "TableEnvironment":
    """A streaming TableEnvironment with checkpointing, state TTL and the Iceberg catalog registered."""
    from pyflink.table import EnvironmentSettings, TableEnvironment

    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    conf = env.get_config()
    for key, value in {
        "pipeline.name": job_name,
        "execution.checkpointing.interval": f"{int(settings.checkpoint_interval_s * 1000)} ms",
        "execution.checkpointing.mode": "EXACTLY_ONCE",
        "table.exec.state.ttl": f"{int(settings.state_ttl_s * 1000)} ms",
        # No idleness: every topic a job reads carries heartbeats on every partition (producers write them,
        # enrich_streams relays them), so no partition is ever truly idle. Idleness detection would do harm:
        # a partition whose records are fetched later than another's (a job started before its input, or
        # a backlog replayed after a restart) would look idle, the watermark would jump to the other
        # partition's time, and the late partition's records would all be classed as late.
        "table.exec.source.idle-timeout": "0 ms",
        "table.local-time-zone": "UTC",
        # A view read by several INSERTs (the Kafka topic and the Iceberg table) is planned once and shared;
        # without this the planner copies it per sink, e.g. every join and its state twice in enrich_streams.
        "table.optimizer.reuse-optimize-block-with-digest-enabled": "true",
    }.items():
        conf.set(key, value)
    env.execute_sql(flink_catalog_ddl(settings))
    env.execute_sql(f"CREATE DATABASE IF NOT EXISTS `{settings.iceberg_catalog}`.`{settings.iceberg_namespace}`")
    return env


def sql_params(settings: Settings, job_name: str, *, bounded: bool) -> dict[str, str]:
    """Values substituted into ``${name}`` placeholders of the SQL files."""
    return {
        "bootstrap": settings.bootstrap_servers,
        "catalog": settings.iceberg_catalog,
        "namespace": settings.iceberg_namespace,
        "lateness": interval_literal(settings.watermark_lateness_s),
        "heartbeat_key": HEARTBEAT_KEY.decode(),
        "max_event_chars": str(settings.max_event_chars),
        # A bounded run (test, backfill) reads from the start under its own group, so it neither resumes
        # from nor moves the offsets of the streaming job of the same name.
        "group_id": f"twitch-pipeline-{job_name}" + ("-bounded" if bounded else ""),
        "startup_mode": "earliest-offset" if bounded else "group-offsets",
        # Its own transactional ids too: a backfill sharing the streaming job's ids would fence its producers.
        "txn_prefix": f"twitch-pipeline-{job_name}" + ("-bounded" if bounded else ""),
        # Bounded runs stop at the offsets that exist when the job starts; streaming runs never stop.
        "bounded_mode": "latest-offset" if bounded else "unbounded",
        # What every exactly-once Kafka output shares (a sink adds connector, topic, its own transactional-id
        # prefix — sinks sharing one would fence each other — and its key). The broker allows the 15 min timeout.
        "exactly_once_json_sink": ", ".join(f"'{k}' = '{v}'" for k, v in {
            "properties.bootstrap.servers": settings.bootstrap_servers,
            "properties.transaction.timeout.ms": "900000",
            "sink.delivery-guarantee": "exactly-once",
            "value.format": "json",
            "value.fields-include": "ALL",
            "value.json.timestamp-format.standard": "ISO-8601",
        }.items()),
    }


def interval_literal(seconds: float) -> str:
    """A Flink SQL interval of ``seconds`` with millisecond precision and no size limit worth meeting.

    ``INTERVAL '<n>' SECOND`` only takes two digits (100 s or more fails validation), so durations are
    written as ``DAY TO SECOND(3)`` literals, which hold up to 99 days.
    """
    millis = round(seconds * 1000)
    days, millis = divmod(millis, 86_400_000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    return f"INTERVAL '{days} {hours:02d}:{minutes:02d}:{millis // 1000:02d}.{millis % 1000:03d}' DAY TO SECOND(3)"


def load_sql(name: str | Path, params: dict[str, str]) -> list[str]:
    """Statements of ``sql/<name>.sql`` (or of the file at a path) with ``${param}`` substituted; comments and blanks dropped."""
    path = name if isinstance(name, Path) else SQL_DIR / f"{name}.sql"

    def value(match: re.Match) -> str:
        if match.group(1) not in params:
            raise KeyError(f"{path.name} uses ${{{match.group(1)}}}, which is not a known parameter")
        return params[match.group(1)]

    return split_statements(re.sub(r"\$\{(\w+)\}", value, path.read_text()))


def execute_script(env: "TableEnvironment", name: str | Path, params: dict[str, str]) -> "TableResult | None":
    """Run DDL statements directly and collect every INSERT into one statement set (one job)."""
    inserts: "StatementSet" = env.create_statement_set()
    has_insert = False
    for stmt in load_sql(name, params):
        if stmt.upper().startswith("INSERT"):
            inserts.add_insert_sql(stmt)
            has_insert = True
        else:
            env.execute_sql(stmt)
    return inserts.execute() if has_insert else None
