"""One typed settings object for the whole project.

Every knob is read from a ``TWITCH_PIPELINE_*`` environment variable (or the same key in ``.env``),
has a default that works on a laptop, and fails fast with the variable's name when its value is bad.
The README table and ``.env.example`` are generated from :data:`FIELDS`, so docs cannot drift from code.

This module must stay importable without PyFlink or Airflow: producers, connectors, Flink job
drivers and DAGs all read it.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

PREFIX = "TWITCH_PIPELINE_"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    """A setting has a value we cannot use; the message names the variable and the fix."""


def _setting(default: Any, doc: str, *, env: str | None = None, secret: bool = False, group: str = "") -> Any:
    return field(default=default, metadata={"doc": doc, "env": env, "secret": secret, "group": group})


@dataclass(frozen=True)
class Settings:
    # -- local platform ---------------------------------------------------------------------------
    run_dir: Path = _setting(Path(".run"), "Directory holding all local platform state, logs and pid files; a fresh directory is a fresh platform.", group="platform")
    jars_dir: Path = _setting(PROJECT_ROOT / ".cache" / "jars", "Where `make jars` puts the Maven-resolved JVM jars (`kafka/`, `flink/`).", group="platform")
    host: str = _setting("127.0.0.1", "Address every local component binds to.", group="platform")
    start_timeout_s: float = _setting(120.0, "Seconds `up` waits for each component to become healthy.", group="platform")
    stop_timeout_s: float = _setting(30.0, "Seconds `down` waits for a component to stop before killing it.", group="platform")
    dashboard_port: int = _setting(3000, "Port of the local dashboard page (the Grafana dashboards drawn in the browser, and the data catalog).", group="platform")

    # -- Kafka ------------------------------------------------------------------------------------
    kafka_port: int = _setting(9092, "Kafka broker (PLAINTEXT) port.", group="kafka")
    kafka_controller_port: int = _setting(9093, "Kafka KRaft controller port.", group="kafka")
    kafka_heap: str = _setting("512m", "Kafka broker JVM heap (-Xmx).", group="kafka")
    kafka_bootstrap: str = _setting("", "Bootstrap servers of an external Kafka; empty means the local broker.", group="kafka")
    kafka_partitions: int = _setting(2, "Default partition count of the project's topics.", group="kafka")

    # -- Flink ------------------------------------------------------------------------------------
    flink_rest_port: int = _setting(8081, "Flink JobManager REST / web UI port.", group="flink")
    flink_rpc_port: int = _setting(6123, "Flink JobManager RPC port.", group="flink")
    flink_task_slots: int = _setting(8, "Task slots of the local TaskManager.", group="flink")
    flink_jobmanager_memory: str = _setting("1024m", "JobManager total process memory.", group="flink")
    flink_taskmanager_memory: str = _setting("3072m", "TaskManager total process memory.", group="flink")
    flink_parallelism: int = _setting(1, "Default parallelism of submitted jobs.", group="flink")
    flink_rest_url: str = _setting("", "REST URL of an external Flink cluster; empty means the local one.", group="flink")
    checkpoint_interval_s: float = _setting(1.0, "Checkpoint interval of the streaming jobs; exactly-once output becomes visible at each checkpoint.", group="flink")
    window_checkpoint_interval_s: float = _setting(5.0, "Checkpoint interval of the jobs that write minute windows only (aggregate_streams, chat_aggregate): a window's rows are visible at the first checkpoint after it closes. Every checkpoint costs each job its commits and state snapshot (docs/performance.md).", group="flink")
    checkpoint_dir: str = _setting("", "Checkpoint/savepoint storage URI; empty means `<run_dir>/flink/checkpoints` (object storage in production).", group="flink")
    state_ttl_s: float = _setting(10800.0, "State TTL (processing time) of the versioned profiles and games and the join state, in seconds; producers republish a live broadcaster's profile after half of it.", group="flink")
    watermark_lateness_s: float = _setting(0.2, "Bounded out-of-orderness of event-time watermarks, in seconds: how far behind the newest event of its partition an event may arrive and still count (docs/performance.md).", group="flink")
    max_event_chars: int = _setting(65536, "Events longer than this many characters go to the dead-letter topic as oversized.", group="flink")
    restart_attempts: int = _setting(50, "Restarts (exponential back-off, 1 s to 15 s) before a failing Flink job gives up.", group="flink")
    airflow_flink_target: str = _setting("local", "Where the Airflow DAGs run Flink jobs: `local` (this machine's cluster, through the main venv's `twitch-pipeline` CLI) or `kubernetes` (FlinkDeployments for the Flink Kubernetes Operator).", group="flink")
    airflow_pipeline_cli: str = _setting("", "The main venv's `twitch-pipeline` CLI that Airflow tasks run PyFlink-side commands with (local target); empty means `<project>/.venv/bin/twitch-pipeline`.", group="flink")

    # -- Iceberg ----------------------------------------------------------------------------------
    iceberg_catalog: str = _setting("twitch", "Iceberg catalog name, identical for Flink SQL and pyiceberg.", group="iceberg")
    iceberg_namespace: str = _setting("lake", "Iceberg namespace (database) of the lake tables.", group="iceberg")
    iceberg_catalog_type: str = _setting("jdbc", "Kind of Iceberg catalog: `jdbc` (a JDBC database; SQLite locally) or `rest` (an Iceberg REST catalog server).", group="iceberg")
    iceberg_uri: str = _setting("", "Catalog URI: a JDBC URI (`jdbc`; empty means SQLite at `<run_dir>/iceberg/catalog.db`) or the REST catalog's `http(s)://` URL (`rest`; required).", group="iceberg")
    iceberg_warehouse: str = _setting("", "Iceberg warehouse URI (`file://` or `s3://bucket/path`); empty means `<run_dir>/iceberg/warehouse` (`jdbc`) or the REST server's own (`rest`).", group="iceberg")
    iceberg_s3_endpoint: str = _setting("", "S3 endpoint of the warehouse's object store (e.g. MinIO's `http://minio:9000`); empty means AWS S3.", group="iceberg")
    iceberg_s3_path_style_access: bool = _setting(False, "Address S3 buckets by path (`endpoint/bucket/key`), as MinIO and most S3-compatible stores need, instead of by host name.", group="iceberg")
    iceberg_s3_region: str = _setting("", "Region of the warehouse's S3 bucket; empty means the AWS SDK's own (`AWS_REGION`, profile).", group="iceberg")
    iceberg_s3_access_key_id: str = _setting("", "Access key id of the warehouse's object store; empty means the AWS default credential chain (`AWS_ACCESS_KEY_ID`, an IAM role).", secret=True, group="iceberg")
    iceberg_s3_secret_access_key: str = _setting("", "Secret access key belonging to `TWITCH_PIPELINE_ICEBERG_S3_ACCESS_KEY_ID`.", secret=True, group="iceberg")
    lake_snapshot_retention_s: float = _setting(300.0, "Lake snapshots older than this are expired, with the files only they referenced (the newest 10 always stay): how far back time travel reaches. Each commit rewrites the list of the snapshots kept (README: Lake upkeep).", group="iceberg")
    lake_expire_interval_s: float = _setting(120.0, "How often the supervisor expires the lake's old snapshots; 0 leaves it to you (`twitch-pipeline expire-snapshots`; on Kubernetes a CronJob runs it).", group="iceberg")

    # -- ClickHouse -------------------------------------------------------------------------------
    clickhouse_url: str = _setting("", "URL of an external ClickHouse (e.g. `https://host:8443`); empty means the embedded chDB server.", group="clickhouse")
    clickhouse_port: int = _setting(8123, "Port of the embedded ClickHouse HTTP interface.", group="clickhouse")
    clickhouse_user: str = _setting("default", "ClickHouse user.", group="clickhouse")
    clickhouse_password: str = _setting("", "ClickHouse password.", secret=True, group="clickhouse")
    clickhouse_database: str = _setting("twitch", "ClickHouse database of the project's tables.", group="clickhouse")
    clickhouse_secure: bool = _setting(False, "Use TLS to the external ClickHouse.", group="clickhouse")

    # -- Twitch -----------------------------------------------------------------------------------
    twitch_client_id: str = _setting("", "Twitch app client id; also read from `TWITCH_CLIENT_ID` or the seed's `APP_ID`.", env="TWITCH_CLIENT_ID", secret=True, group="twitch")
    twitch_client_secret: str = _setting("", "Twitch app client secret; also read from `TWITCH_CLIENT_SECRET` or `APP_SECRET`.", env="TWITCH_CLIENT_SECRET", secret=True, group="twitch")
    twitch_api_url: str = _setting("", "Helix base URL; empty means Twitch's (`http://HOST:PORT/mock/` for the Twitch CLI mock API).", group="twitch")
    twitch_auth_url: str = _setting("", "OAuth base URL; empty means Twitch's (`http://HOST:PORT/auth/` for the Twitch CLI mock API).", group="twitch")
    twitch_poll_interval_s: float = _setting(60.0, "Seconds between two Helix polls (top games, live streams, new profiles).", group="twitch")
    twitch_top_games: int = _setting(20, "How many top games each poll publishes to `twitch_games`.", group="twitch")
    twitch_tracked_games: str = _setting("", "Comma-separated game names or ids whose live streams are polled; empty means the top streams overall.", group="twitch")
    twitch_top_streams: int = _setting(1000, "How many live streams (by viewers) one poll fetches at most.", group="twitch")
    twitch_profile_refresh_s: float = _setting(3600.0, "A broadcaster's profile is fetched again after this many seconds (changes are published).", group="twitch")
    twitch_chat_channels: str = _setting("", "Comma-separated channel logins whose chat goes to `chat_messages`; empty means no chat ingestion.", group="twitch")
    twitch_chat_token: str = _setting("", "User access token with `chat:read` for chat ingestion.", secret=True, group="twitch")
    twitch_chat_refresh_token: str = _setting("", "Refresh token of the chat user token; lets the producer renew it when it expires.", secret=True, group="twitch")
    twitch_chat_url: str = _setting("", "Chat websocket URL; empty means Twitch's IRC-over-websocket endpoint.", group="twitch")

    # -- producers --------------------------------------------------------------------------------
    producer_compression: str = _setting("zstd", "Kafka producer compression (`zstd`, `lz4`, `snappy`, `gzip`, `none`).", group="producers")
    producer_linger_ms: int = _setting(20, "Kafka producer `linger.ms`: how long a batch may wait to fill.", group="producers")
    producer_batch_size: int = _setting(262144, "Kafka producer `batch.size` in bytes.", group="producers")
    producer_validate: bool = _setting(True, "Validate every valid event against its topic's JSON Schema before sending (rejects go to `producer_dead_letter`).", group="producers")
    synthetic_rate: float = _setting(0.0, "Events/s cap of the synthetic source; 0 means no cap (a continuous run still follows the wall clock).", group="producers")
    synthetic_seed: int = _setting(1, "Seed of the synthetic source: the same seed and start time give the same events.", group="producers")
    synthetic_channels: int = _setting(3000, "Channels in the synthetic world (about a third are live at a time).", group="producers")
    synthetic_games: int = _setting(300, "Games (categories) in the synthetic world.", group="producers")
    heartbeat_interval_s: float = _setting(0.5, "Seconds between heartbeats of a continuous run (they advance watermarks of idle partitions; quiet topics hold the joins back up to this long).", group="producers")
    drain_horizon_s: float = _setting(180.0, "A bounded run ends with heartbeats this many and twice this many seconds past its last event, so every event-time window downstream closes; keep it above 2 x lateness + 60.", group="producers")

    # -- ClickHouse sink -------------------------------------------------------------------------
    sink_topics: str = _setting("", "Comma-separated Flink output topics the ClickHouse sink loads; empty means every mapped topic.", group="sink")
    sink_group: str = _setting("twitch-pipeline-clickhouse-sink", "Kafka consumer group of the ClickHouse sink.", group="sink")
    sink_instance_id: str = _setting("", "Static group membership id of this sink replica (a restarted sink takes its partitions back at once); empty means `<group>-<hostname>`.", group="sink")
    sink_batch_rows: int = _setting(50000, "A partition's batch is inserted once it holds this many records.", group="sink")
    sink_batch_max_wait_s: float = _setting(1.0, "A partition's batch is also inserted once its oldest record has waited this many seconds while records keep coming (a partition with nothing more to read is inserted at once).", group="sink")
    sink_poll_timeout_s: float = _setting(0.2, "Seconds one Kafka poll of the sink waits for records.", group="sink")
    sink_dead_letter_topic: str = _setting("dead_letter", "Topic receiving records that do not fit their ClickHouse table, with the reason.", group="sink")

    # -- data quality ----------------------------------------------------------------------------
    quality_freshness_slo_s: float = _setting(600.0, "Freshness SLO of `check`: a table whose newest event time is older than this many seconds fails its freshness check.", group="quality")

    # -- derived paths ----------------------------------------------------------------------------
    @property
    def run_path(self) -> Path:
        return self.run_dir.resolve()

    def state_file(self, service: str) -> Path:
        """Where a long-running service keeps its current health (``errors.StateLog``); `status` reads it."""
        return self.run_path / "state" / f"{service}.json"

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka_bootstrap or f"{self.host}:{self.kafka_port}"

    @property
    def flink_rest(self) -> str:
        return self.flink_rest_url.rstrip("/") or f"http://{self.host}:{self.flink_rest_port}"

    @property
    def checkpoint_uri(self) -> str:
        return self.checkpoint_dir or (self.run_path / "flink" / "checkpoints").as_uri()

    @property
    def savepoint_uri(self) -> str:
        return (self.run_path / "flink" / "savepoints").as_uri() if not self.checkpoint_dir else f"{self.checkpoint_dir.rstrip('/')}/../savepoints"

    @property
    def iceberg_catalog_uri(self) -> str:
        return self.iceberg_uri or f"jdbc:sqlite:{self.run_path / 'iceberg' / 'catalog.db'}"

    @property
    def iceberg_warehouse_uri(self) -> str:
        """The warehouse the clients name; empty for a REST catalog left to place tables in its own."""
        if self.iceberg_warehouse or self.iceberg_catalog_type == "rest":
            return self.iceberg_warehouse
        return (self.run_path / "iceberg" / "warehouse").as_uri()

    def __post_init__(self) -> None:
        _check_iceberg(self)

    @property
    def clickhouse_embedded(self) -> bool:
        return not self.clickhouse_url

    @property
    def clickhouse_http_url(self) -> str:
        return self.clickhouse_url.rstrip("/") or f"http://{self.host}:{self.clickhouse_port}"

    @property
    def twitch_credentials_set(self) -> bool:
        return bool(self.twitch_client_id and self.twitch_client_secret)


def _check_iceberg(s: Settings) -> None:
    """Iceberg settings that only make sense together; each error names the variable to fix."""
    kind, uri = s.iceberg_catalog_type, s.iceberg_uri
    if kind not in ("jdbc", "rest"):
        raise SettingsError(f"{PREFIX}ICEBERG_CATALOG_TYPE={kind!r} must be `jdbc` or `rest`")
    if kind == "rest" and not uri.startswith(("http://", "https://")):
        raise SettingsError(f"{PREFIX}ICEBERG_URI={uri!r} must be the REST catalog's http(s):// URL when {PREFIX}ICEBERG_CATALOG_TYPE=rest")
    if kind == "jdbc" and uri and not uri.startswith("jdbc:"):
        raise SettingsError(f"{PREFIX}ICEBERG_URI={uri!r} is not a JDBC URI; for a REST catalog also set {PREFIX}ICEBERG_CATALOG_TYPE=rest")
    if s.lake_snapshot_retention_s <= 0:
        raise SettingsError(f"{PREFIX}LAKE_SNAPSHOT_RETENTION_S={s.lake_snapshot_retention_s} must be more than 0 seconds")
    if s.iceberg_s3_endpoint and not s.iceberg_s3_endpoint.startswith(("http://", "https://")):
        raise SettingsError(f"{PREFIX}ICEBERG_S3_ENDPOINT={s.iceberg_s3_endpoint!r} must be an http(s):// URL")
    # One key without the other would silently fall back to the default credential chain for half the clients.
    if bool(s.iceberg_s3_access_key_id) != bool(s.iceberg_s3_secret_access_key):
        missing = "ICEBERG_S3_SECRET_ACCESS_KEY" if s.iceberg_s3_access_key_id else "ICEBERG_S3_ACCESS_KEY_ID"
        raise SettingsError(f"{PREFIX}{missing} is empty but its pair is set: set both S3 keys or neither")


# Old names users of the seed project have in their .env files.
_ALIASES = {"twitch_client_id": ("APP_ID",), "twitch_client_secret": ("APP_SECRET",)}

FIELDS: tuple[dataclasses.Field, ...] = dataclasses.fields(Settings)


def env_name(f: dataclasses.Field) -> str:
    return f.metadata.get("env") or PREFIX + f.name.upper()


def _parse(f: dataclasses.Field, raw: str) -> Any:
    kind = type(f.default)
    name = env_name(f)
    try:
        if kind is bool:
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off", ""):
                return False
            raise ValueError
        if kind is int:
            value: Any = int(raw)
        elif kind is float:
            value = float(raw)
        elif issubclass(kind, Path):
            value = Path(raw).expanduser()
        else:
            value = raw
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a valid {kind.__name__}; fix it in the environment or .env") from None
    if kind in (int, float) and value < 0:
        raise SettingsError(f"{name}={raw!r} must not be negative")
    if f.name.endswith("_port") and not 0 < value < 65536:
        raise SettingsError(f"{name}={raw!r} is not a TCP port (1-65535)")
    return value


def read_dotenv(path: Path) -> dict[str, str]:
    """Parse a ``.env`` file: ``KEY=VALUE`` lines, ``#`` comments, optional quotes, optional ``export``."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def load_settings(environ: Mapping[str, str] | None = None, dotenv: Path | None = Path(".env")) -> Settings:
    """Build :class:`Settings` from the environment, falling back to ``.env`` then to defaults.

    The process environment wins over ``.env`` so CI and tests can override anything.
    """
    source: dict[str, str] = read_dotenv(dotenv) if dotenv is not None else {}
    source.update(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    for f in FIELDS:
        for name in (env_name(f), *_ALIASES.get(f.name, ())):
            if name in source and (source[name] != "" or type(f.default) is str):
                values[f.name] = _parse(f, source[name])
                break
    return Settings(**values)


def redacted(settings: Settings) -> dict[str, Any]:
    """Settings as a dict fit for logs: secrets are masked, never printed."""
    out = {}
    for f in FIELDS:
        value = getattr(settings, f.name)
        out[env_name(f)] = ("***" if value else "") if f.metadata["secret"] else str(value)
    return out


def markdown_table() -> str:
    """The README's settings table, generated from the dataclass so it always matches the code."""
    rows = ["| Variable | Default | Description |", "| --- | --- | --- |"]
    for f in FIELDS:
        default = f.default
        if isinstance(default, Path) and default.is_absolute():
            default = "<project>/" + str(default.relative_to(PROJECT_ROOT))
        shown = f"`{default}`" if default != "" else "(empty)"
        rows.append(f"| `{env_name(f)}` | {shown} | {f.metadata['doc']} |")
    return "\n".join(rows)


def env_example() -> str:
    """Contents of ``.env.example``: every setting, commented out at its default."""
    lines = ["# twitch-pipeline settings. Copy to .env and uncomment what you change.", "# Generated by `twitch-pipeline settings --env`; the README has the same table.", ""]
    group = None
    for f in FIELDS:
        if f.metadata["group"] != group:
            group = f.metadata["group"]
            lines += ["", f"# --- {group} ---"]
        lines.append(f"# {f.metadata['doc']}")
        default = f.default
        if isinstance(default, Path) and default.is_absolute():
            default = ""
        lines.append(f"# {env_name(f)}={default if type(default) is not bool else str(default).lower()}")
    return "\n".join(lines).replace("\n\n\n", "\n\n") + "\n"



def replace_section(text: str, name: str, body: str) -> str:
    """``text`` with the part between ``<!-- name:begin -->`` and ``<!-- name:end -->`` replaced by ``body``."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    head, found, rest = text.partition(begin)
    if not found:
        raise SettingsError(f"README.md has no {begin} marker")
    _, _, tail = rest.partition(end)
    return f"{head}{begin}\n{body}\n{end}{tail}"


def write_docs(root: Path = PROJECT_ROOT, sections: dict[str, str] | None = None) -> None:
    """Regenerate the README's generated sections (the settings table and any in ``sections``) and ``.env.example``."""
    readme = root / "README.md"
    text = readme.read_text(encoding="utf-8")
    for name, body in {"settings": markdown_table(), **(sections or {})}.items():
        text = replace_section(text, name, body)
    readme.write_text(text, encoding="utf-8")
    (root / ".env.example").write_text(env_example(), encoding="utf-8")


def to_env(settings: Settings) -> dict[str, str]:
    """The settings as environment variables, for child processes (job drivers, connectors).

    Paths go out absolute: a child may run in another working directory (`flink run` does).
    """
    out = {}
    for f in FIELDS:
        value = getattr(settings, f.name)
        if isinstance(value, bool):
            out[env_name(f)] = str(value).lower()
        else:
            out[env_name(f)] = str(value.resolve()) if isinstance(value, Path) else str(value)
    return out
