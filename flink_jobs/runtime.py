"""What every job driver shares: a configured TableEnvironment and SQL loaded from ``sql/`` by name.

A driver's ``main`` calls :func:`start_job` (the shared command line, the configured TableEnvironment and
the SQL parameters), then runs ``.sql`` files with :meth:`Job.execute`. The SQL itself never changes between
modes: ``--bounded`` only switches the Kafka sources to stop at the offsets present when the job starts (tests
and backfills), while the streaming default reads forever.

A Kafka table's connector options come from one fragment per catalog topic, so a job's SQL declares only its
columns, watermark and format: ``WITH (${kafka_source:game_streams}, 'format' = 'raw')`` and
``WITH (${kafka_sink:late_events})`` (exactly once, keyed by the topic's catalog key).
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from connectors import catalog
from connectors.iceberg import LAKE_TABLE_PROPERTIES, flink_catalog_ddl
from connectors.sql_script import split_statements
from connectors.topics import HEARTBEAT_KEY, heartbeat_keys
from twitch_pipeline.settings import Settings, load_settings

if TYPE_CHECKING:
    from pyflink.table import StatementSet, TableEnvironment, TableResult

SQL_DIR = Path(__file__).resolve().parent / "sql"


def checkpoint_interval_s(settings: Settings, job_name: str) -> float:
    """A job's checkpoint interval. The jobs that write minute windows only checkpoint less often: each checkpoint costs
    a job its commits (a Kafka transaction per output, a load of each Iceberg table) and a snapshot of its heap state,
    while a window's rows wait for the window to close anyway. At ~9,400 events/s end to end, alternating, 5 s for
    them against 1 s took produced -> visible p99 from 8.8 and 8.1 s to 5.4 and 4.4 s, the TaskManager from 1.14 to
    1.06 and 0.95 cores (session 12, docs/performance.md)."""
    try:
        windows = catalog.job(job_name).minute_windows
    except KeyError:  # a driver file of one's own
        windows = False
    return settings.window_checkpoint_interval_s if windows else settings.checkpoint_interval_s


def table_env(settings: Settings, job_name: str, *, bounded: bool = False) -> "TableEnvironment":
    """A streaming TableEnvironment with checkpointing, state TTL and the Iceberg catalog registered."""
    from pyflink.table import EnvironmentSettings, TableEnvironment

    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    conf = env.get_config()
    for key, value in {
        "pipeline.name": job_name,
        "execution.checkpointing.interval": f"{int(checkpoint_interval_s(settings, job_name) * 1000)} ms",
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
    """Values substituted into ``${name}`` placeholders of the SQL files, the Kafka fragments of every topic included."""
    # A bounded run (test, backfill) reads from the start under its own group, so it neither resumes from nor
    # moves the offsets of the streaming job of the same name; and it has its own transactional ids: a backfill
    # sharing the streaming job's ids would fence its producers.
    run_id = f"twitch-pipeline-{job_name}" + ("-bounded" if bounded else "")
    source = {
        "properties.bootstrap.servers": settings.bootstrap_servers,
        "properties.group.id": run_id,
        # Exactly-once inputs (the jobs' outputs) are read as committed; the producers' topics have no transactions.
        "properties.isolation.level": "read_committed",
        "properties.auto.offset.reset": "earliest",
        "scan.startup.mode": "earliest-offset" if bounded else "group-offsets",
        # Bounded runs stop at the offsets that exist when the job starts; streaming runs never stop.
        "scan.bounded.mode": "latest-offset" if bounded else "unbounded",
    }
    # What every exactly-once Kafka output shares; each sink has its own transactional-id prefix (sinks sharing
    # one would fence each other). The broker allows the 15 min transaction timeout.
    sink = {
        "properties.bootstrap.servers": settings.bootstrap_servers,
        "properties.transaction.timeout.ms": "900000",
        "sink.delivery-guarantee": "exactly-once",
        # Transactional ids from a small pool per sink, not a new one per checkpoint: the broker keeps every id it has
        # seen for 7 days, and with the default naming all four jobs at 1 s checkpoints added ~15 a second (1,710 after
        # 90 s; 15 in all with the pool). On recovery it aborts leftovers by listing them (Kafka's ListTransactions:
        # a secured cluster must grant DESCRIBE on the prefix's transactional ids).
        "sink.transaction-naming-strategy": "POOLING",
        "value.format": "json",
        "value.fields-include": "ALL",
        "value.json.timestamp-format.standard": "ISO-8601",
    }
    params = {
        "catalog": settings.iceberg_catalog,
        "namespace": settings.iceberg_namespace,
        "lake_table": with_options(LAKE_TABLE_PROPERTIES),  # a lake table's WITH options: CREATE TABLE ... WITH (${lake_table})
        "lateness": interval_literal(settings.watermark_lateness_s),
        "heartbeat_key": HEARTBEAT_KEY.decode(),
        "max_event_chars": str(settings.max_event_chars),
        "group_id": run_id,
        # whole seconds (TIMESTAMPDIFF's unit), at least 1: what tells a stream's first snapshot
        "poll_interval_s": str(max(1, round(settings.twitch_poll_interval_s))),
    }
    for topic in catalog.TOPICS:
        # the data contract of a raw topic, as a SQL string for json_contract_violation
        params[f"contract:{topic.name}"] = "'" + topic.contract_spec().replace("'", "''") + "'"
        params[f"kafka_source:{topic.name}"] = with_options({"connector": "kafka", "topic": topic.name, **source})
        params[f"kafka_sink:{topic.name}"] = with_options({
            "connector": "kafka", "topic": topic.name, "sink.transactional-id-prefix": f"{run_id}-{topic.name}", **key_options(topic), **sink})
    return params


def key_options(topic: catalog.Topic) -> dict[str, str]:
    """A sink's record key: the topic's catalog key, as raw bytes (what the producers and the heartbeat keys use).

    A timestamp key (``top_streams``' window_start) has no raw form: it is written as JSON.
    """
    if not topic.key:
        return {}
    columns = {c.name: c.type for o in catalog.OUTPUTS if o.name == topic.name for c in o.columns}
    if columns.get(topic.key, "").startswith("DateTime"):
        return {"key.fields": topic.key, "key.format": "json", "key.json.timestamp-format.standard": "ISO-8601"}
    return {"key.fields": topic.key, "key.format": "raw"}


def with_options(options: dict[str, str]) -> str:
    return ", ".join(f"'{k}' = '{v}'" for k, v in options.items())


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

    return split_statements(re.sub(r"\$\{([\w:]+)\}", value, path.read_text()))


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


@dataclass
class Job:
    """A driver's run: its arguments, settings, configured environment and SQL parameters."""

    args: argparse.Namespace
    settings: Settings
    env: "TableEnvironment"
    params: dict[str, str]

    def execute(self, name: str | Path) -> "TableResult | None":
        """Run one ``.sql`` file; a bounded run waits for the job its INSERTs make to finish."""
        result = execute_script(self.env, name, self.params)
        if self.args.bounded and result is not None:
            result.wait()
        return result


def job_parser(job_name: str, doc: str | None) -> argparse.ArgumentParser:
    """The command line every driver takes; a driver may add its own arguments before :func:`start_job`."""
    parser = argparse.ArgumentParser(prog=job_name, description=doc)
    parser.add_argument("--bounded", action="store_true", help="stop at the offsets present at start (backfill/test)")
    # Benchmarks run variants of a job's configuration side by side; a user tries a setting without a release.
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE", help="Flink configuration over the job's own (repeatable)")
    return parser


def start_job(job_name: str, args: argparse.Namespace, *, conf: dict[str, str] | None = None, relay_heartbeats_to: str | None = None) -> Job:
    """Settings, the job's TableEnvironment with ``conf`` (then ``--conf``) over the shared configuration, its SQL
    parameters, and the side outputs every job may write (``sql/side_outputs.sql``: late_events_topic, dead_letter_topic).

    ``relay_heartbeats_to``: the output topic the job relays heartbeats to, once per partition, under the keys
    ``${heartbeat_keys}`` lists. Its partition count is read from the broker when the job is submitted
    (resubmit after adding partitions).
    """
    settings = load_settings()
    env = table_env(settings, job_name, bounded=args.bounded)
    # Heap state for every streaming job: their state is small (seconds of dedup windows and join buffers, a row per
    # stream or channel and open minute, one version per profile and game), and RocksDB serializes a read and a write
    # per row. Measured per job: enrich_streams' sort would rewrite its per-timestamp list on every append; chat_enrich
    # 6,302 messages/s on RocksDB against ~10,000 (session 8); over 1M enriched rows, alternating, 26-34 % fewer
    # TaskManager CPU-seconds per row for aggregate_streams and 30-56 % for chat_aggregate (session 10,
    # docs/performance.md). The Airflow backfill, which does not start here, keeps the cluster's RocksDB: it reads whole
    # days of the lake in no time order, so all their windows can be open at once.
    for key, value in {"state.backend.type": "hashmap", **(conf or {}), **dict(item.partition("=")[::2] for item in args.conf)}.items():
        env.get_config().set(key, value)
    params = sql_params(settings, job_name, bounded=args.bounded)
    if relay_heartbeats_to:
        from connectors.kafka import partition_count

        params["heartbeat_keys"] = ", ".join(f"'{k}'" for k in heartbeat_keys(partition_count(settings, relay_heartbeats_to)))
    execute_script(env, "side_outputs", params)  # late_events_topic and dead_letter_topic
    return Job(args, settings, env, params)
