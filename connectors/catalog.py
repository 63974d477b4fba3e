"""The pipeline, declared once: every Kafka topic, Flink job and output, with a description of each.

Everything else derives from this module: topic creation (`up`), the producers' key fields, the sink's
topic → table mapping, the order `start` submits jobs in, the README's tables, the Kubernetes topic
resources, the dashboards' data catalog page and the Airflow DAGs. ``tests/unit/test_catalog.py`` fails on
an orphan topic, on an output the sink loads without a migration, and on a migration whose columns differ
from its output's.

Adding an output: declare it in :data:`OUTPUTS` (and its topic in :data:`TOPICS`), write the SQL that fills
it, and, if the sink loads it, one migration ``connectors/clickhouse_migrations/NNN_<table>.sql``.

This module is a leaf: it imports nothing of the project, so every layer may read it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
SCHEMA_DIR = Path(__file__).resolve().parent.parent / "producers" / "schemas"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "clickhouse_migrations"


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # the ClickHouse type; the Iceberg and Flink types are the matching ones
    doc: str


@dataclass(frozen=True)
class Topic:
    name: str
    key: str  # the field whose value is the record key; "" when records carry no key of their own
    doc: str
    cleanup_policy: str = "delete"  # "compact" keeps the latest value per key (a changelog of entities)
    retention_ms: int = 7 * DAY_MS  # -1 keeps forever
    partitions: int | None = None  # None means the `kafka_partitions` setting
    schema: str | None = None  # JSON Schema file name in producers/schemas/ (the data contract of raw topics)

    def config(self) -> dict[str, str]:
        return {"cleanup.policy": self.cleanup_policy, "retention.ms": str(self.retention_ms)}

    @property
    def schema_path(self) -> Path | None:
        return SCHEMA_DIR / self.schema if self.schema else None

    def contract_spec(self) -> str:
        """The required fields of the topic's JSON Schema with their JSON types, ``field:type,field:a|b,...``.

        What a Flink job checks every record against (the json_contract_violation function): the schema stays
        the one declaration of the contract. A field's type comes from ``type``, its ``$ref``'s definition, or
        the type of its ``enum`` values.
        """
        if not self.schema_path:
            return ""
        schema = json.loads(self.schema_path.read_text())
        entries = []
        for name in schema.get("required", []):
            prop = schema["properties"][name]
            if "$ref" in prop:
                prop = schema["$defs"][prop["$ref"].removeprefix("#/$defs/")]
            types = prop.get("type") or sorted({_JSON_TYPES[type(v)] for v in prop["enum"]})
            entries.append(f"{name}:{'|'.join([types] if isinstance(types, str) else types)}")
        return ",".join(entries)


_JSON_TYPES = {str: "string", bool: "boolean", int: "integer", float: "number", type(None): "null"}


@dataclass(frozen=True)
class Output:
    """A dataset a job writes: a Kafka topic, optionally loaded into ClickHouse and/or kept in Iceberg; or a lake-only
    Iceberg table (``kafka=False``: no topic, so nothing for the sink to load)."""

    name: str  # the topic name; the ClickHouse and Iceberg tables carry the same name
    doc: str
    columns: tuple[Column, ...]
    event_time: str  # the column holding event time (freshness, partitioning, backfill ranges)
    clickhouse: bool = True  # loaded by the sink into the ClickHouse table `name` (needs a migration)
    iceberg: bool = False  # also written to the Iceberg table `<namespace>.name`
    partition_key: tuple[str, ...] = ()  # the key of one row (uniqueness checks, backfill replacement)
    kafka: bool = True  # written to the topic `name` (declared in TOPICS); False: the job writes the Iceberg table only

    @property
    def table(self) -> str:
        return self.name

    @property
    def topic(self) -> Topic | None:
        return topic(self.name) if self.kafka else None


@dataclass(frozen=True)
class Job:
    name: str  # registry key, driver's `pipeline.name`, SQL file prefix, Kubernetes FlinkDeployment name
    doc: str
    module: str  # driver module under flink_jobs/ (one entry function `main`)
    inputs: tuple[str, ...]  # topics read
    outputs: tuple[str, ...]  # topics written (outputs and side topics such as dead letters) and lake-only outputs
    streaming: bool = True  # kept running by `start`, in declaration order
    minute_windows: bool = False  # writes minute windows only: checkpoints every TWITCH_PIPELINE_WINDOW_CHECKPOINT_INTERVAL_S
    sql: tuple[str, ...] = field(default=())  # SQL files in flink_jobs/sql/, run in order


def _ts(name: str, doc: str) -> Column:
    return Column(name, "DateTime64(3, 'UTC')", doc)


WINDOW = (_ts("window_start", "Start of the 1-minute event-time window (inclusive)."), _ts("window_end", "End of the window (exclusive)."))

TOPICS: tuple[Topic, ...] = (
    # Raw events written by the producers; each has a JSON Schema data contract.
    Topic("game_streams", "stream_id", "One snapshot per live stream per Helix poll (or synthetic tick).", schema="game_streams.schema.json"),
    Topic("twitch_users", "user_id", "Broadcaster profiles, one record per observed version; republished so none expires from join state.", "compact", -1, schema="twitch_users.schema.json"),
    Topic("twitch_games", "game_id", "Games (categories), one record per observed version.", "compact", -1, schema="twitch_games.schema.json"),
    Topic("chat_messages", "channel", "Chat messages of the ingested channels, as Twitch delivered them.", retention_ms=3 * DAY_MS, schema="chat_messages.schema.json"),
    Topic("producer_dead_letter", "", "Events a producer could not send as valid (schema violations), with the error.", retention_ms=14 * DAY_MS),
    # Written by the Flink jobs and read by the sink; created up front so jobs can start in any order.
    Topic("game_streams_enriched", "event_id", "Stream snapshots joined with the broadcaster profile and game valid at poll time."),
    Topic("game_minute_stats", "game_id", "Per game and minute: live streams, viewers."),
    Topic("language_minute_stats", "language", "Per language and minute: live streams, viewers."),
    Topic("share_minute_stats", "dimension", "Per minute: mature-content and broadcaster-type shares."),
    Topic("stream_duration_stats", "game_id", "Per game and minute: live streams by how long they have been live."),
    Topic("top_streams", "window_start", "The top streams by viewers per minute."),
    Topic("chat_silver", "message_id", "Chat messages that passed their contract, once per message_id, with sentiment, emote and engagement features."),
    Topic("chat_minute_stats", "channel", "Per channel and minute: chat volume, chatters, sentiment, engagement, emotes, against the stream's viewers."),
    Topic("chat_top_emotes", "channel", "Per channel and minute: the most used emotes."),
    Topic("late_events", "", "Events that arrived behind the watermark, with the stage that dropped them.", retention_ms=14 * DAY_MS),
    Topic("dead_letter", "", "Records the jobs and the sink could not process, with the reason.", retention_ms=14 * DAY_MS),
)

_MINUTE_STATS_DOC = "aggregated over 1-minute tumbling windows of data_retrieved_at, exactly once"

OUTPUTS: tuple[Output, ...] = (
    Output(
        "game_streams_enriched",
        "Deduplicated stream snapshots joined (event-time temporal joins) with the broadcaster profile and the game valid at poll time.",
        (
            Column("stream_id", "String", "Twitch stream id."),
            Column("user_id", "String", "Broadcaster id."),
            Column("user_login", "Nullable(String)", "Broadcaster login."),
            Column("user_name", "Nullable(String)", "Broadcaster display name."),
            Column("game_id", "String", "Game (category) id."),
            Column("game_name", "Nullable(String)", "Game name from the game versions (the stream's own name when unknown)."),
            Column("stream_type", "Nullable(String)", "`live` (Helix)."),
            Column("title", "Nullable(String)", "Stream title (user content)."),
            Column("viewer_count", "Nullable(UInt32)", "Concurrent viewers at the snapshot."),
            _ts("started_at", "When the stream went live."),
            Column("language", "Nullable(String)", "Stream language (ISO 639-1)."),
            Column("is_mature", "Nullable(Bool)", "Marked for mature audiences."),
            Column("tags", "Nullable(String)", "Stream tags, comma-separated."),
            Column("broadcaster_type", "Nullable(String)", "`partner`, `affiliate` or empty, from the profile valid at poll time."),
            Column("user_description", "Nullable(String)", "Channel description from that profile."),
            Column("user_created_at", "Nullable(DateTime64(3, 'UTC'))", "When the broadcaster's account was created."),
            _ts("data_retrieved_at", "When the snapshot was fetched: the event time."),
            Column("event_id", "String", "Identity of the snapshot (stream and fetch time); duplicates share it."),
        ),
        event_time="data_retrieved_at",
        iceberg=True,
        partition_key=("event_id",),
    ),
    Output(
        "game_minute_stats",
        f"Per game and minute: summed, average and peak viewers, live and newly started streams; {_MINUTE_STATS_DOC}.",
        (
            *WINDOW,
            Column("game_id", "String", "Game id."),
            Column("game_name", "Nullable(String)", "Game name."),
            Column("viewers_sum", "Int64", "Viewers summed over the window's snapshots."),
            Column("viewers_avg", "Float64", "Average viewers per snapshot."),
            Column("viewers_max", "Int32", "Most viewers of one stream."),
            Column("live_streams", "Int64", "Distinct live streams."),
            Column("new_streams", "Int64", "Streams that went live since the previous poll: their first snapshot falls in this window."),
        ),
        event_time="window_end",
        iceberg=True,
        partition_key=("window_start", "game_id"),
    ),
    Output(
        "language_minute_stats",
        f"Per stream language and minute: viewers and live streams; {_MINUTE_STATS_DOC}.",
        (*WINDOW, Column("language", "String", "Stream language."), Column("viewers_sum", "Int64", "Viewers summed."), Column("live_streams", "Int64", "Distinct live streams.")),
        event_time="window_end",
        iceberg=True,
        partition_key=("window_start", "language"),
    ),
    Output(
        "share_minute_stats",
        f"Per minute, live streams and viewers by mature flag and by broadcaster type; {_MINUTE_STATS_DOC}.",
        (
            *WINDOW,
            Column("dimension", "LowCardinality(String)", "`is_mature` or `broadcaster_type`."),
            Column("value", "LowCardinality(String)", "The dimension's value."),
            Column("live_streams", "Int64", "Distinct live streams."),
            Column("viewers_sum", "Int64", "Viewers summed."),
        ),
        event_time="window_end",
        iceberg=True,
        partition_key=("window_start", "dimension", "value"),
    ),
    Output(
        "stream_duration_stats",
        f"Per game and minute, live streams by how long they have been live; {_MINUTE_STATS_DOC}.",
        (
            *WINDOW,
            Column("game_id", "String", "Game id."),
            Column("game_name", "Nullable(String)", "Game name."),
            Column("duration_bucket", "LowCardinality(String)", "Time live: `0-1h`, `1-2h`, `2-4h`, `4-8h`, `8h+`."),
            Column("live_streams", "Int64", "Distinct live streams."),
        ),
        event_time="window_end",
        iceberg=True,
        partition_key=("window_start", "game_id", "duration_bucket"),
    ),
    Output(
        "top_streams",
        "The streams with the most viewers per minute, ranked.",
        (
            *WINDOW,
            Column("rank_in_window", "Int32", "1 is the most watched."),
            Column("stream_id", "String", "Stream id."),
            Column("user_login", "Nullable(String)", "Broadcaster login."),
            Column("user_name", "Nullable(String)", "Broadcaster display name."),
            Column("game_id", "Nullable(String)", "Game id."),
            Column("game_name", "Nullable(String)", "Game name."),
            Column("title", "Nullable(String)", "Stream title (user content)."),
            Column("language", "Nullable(String)", "Stream language."),
            Column("viewer_count", "Int32", "Peak viewers in the window."),
        ),
        event_time="window_end",
        iceberg=True,
        partition_key=("window_start", "rank_in_window"),
    ),
    Output(
        "late_events",
        "Events classed late by a stage (behind its watermark), kept so nothing is lost silently.",
        (
            Column("event_id", "String", "The late event's id."),
            Column("stream_id", "String", "Its stream."),
            _ts("data_retrieved_at", "Its event time."),
            _ts("detected_at", "When the stage saw it."),
            Column("reason", "LowCardinality(String)", "Which stage classed it late: `late` (enrichment), `late_for_window` (aggregation), `chat_late_for_dedup` or `chat_late_for_window` (chat; event_id is the message_id, stream_id the channel)."),
        ),
        event_time="detected_at",
        partition_key=("event_id", "reason"),
    ),
    Output(
        "chat_bronze",
        "Every record of chat_messages but producer heartbeats, exactly once and as received (raw bytes), with its parse status; "
        "malformed records also go to dead_letter. In the lake only, partitioned by ingest_date (see docs/chat.md).",
        (
            Column("topic", "String", "Kafka topic the record was read from (chat_messages)."),
            Column("kafka_partition", "Int32", "Its Kafka partition."),
            Column("kafka_offset", "Int64", "Its Kafka offset; (topic, kafka_partition, kafka_offset) is the record's identity."),
            _ts("kafka_timestamp", "The Kafka record timestamp (when the producer wrote it)."),
            Column("raw_payload", "String", "The record's bytes exactly as received (binary: invalid UTF-8 is kept as is)."),
            _ts("ingest_ts", "When chat_enrich read the record (processing time)."),
            Column("parse_status", "LowCardinality(String)", "`OK`, `PARSE_ERROR` (not decodable: invalid UTF-8 or JSON, oversized) or `SCHEMA_ERROR` (breaks the chat_messages contract)."),
            Column("parse_error", "Nullable(String)", "Why, for the two error statuses."),
            Column("message_id", "Nullable(String)", "The message id of a valid record."),
            Column("channel", "Nullable(String)", "The channel login of a valid record."),
            Column("ingest_date", "Date", "The day of ingest_ts: the table's partition."),
        ),
        event_time="ingest_ts",
        clickhouse=False,
        iceberg=True,
        partition_key=("topic", "kafka_partition", "kafka_offset"),
        kafka=False,
    ),
    Output(
        "chat_silver",
        "Chat messages that passed the chat_messages contract, deduplicated by message_id (1-second event-time windows), "
        "with Twitch-aware sentiment (VADER + flink_jobs/data/twitch_lexicon.tsv), emote and engagement features. "
        "The raw records, valid or not, are in chat_bronze.",
        (
            Column("message_id", "String", "Twitch message id; one row per id."),
            Column("channel", "String", "Channel login (joins game_streams_enriched.user_login)."),
            Column("channel_id", "String", "Broadcaster id."),
            Column("chatter_id", "String", "Chatter's user id."),
            Column("chatter_login", "String", "Chatter's login."),
            Column("chatter_name", "String", "Chatter's display name."),
            Column("text", "String", "The message (user content)."),
            Column("badges", "String", "Badges as `set_id/id`, comma-separated."),
            Column("reply_parent_message_id", "Nullable(String)", "The message this one replies to."),
            Column("mentions", "String", "Logins mentioned with @, comma-separated."),
            _ts("sent_at", "When Twitch received the message: the event time."),
            _ts("data_retrieved_at", "When the producer received it."),
            Column("message_length", "Int32", "Length in characters (Unicode code points)."),
            Column("char_entropy", "Float64", "Shannon entropy of the characters, bits per character (spam and copypasta score low or repeat)."),
            Column("emote_count", "Int32", "Emote occurrences: Twitch's emote positions plus lexicon emotes outside them."),
            Column("emote_ratio", "Float64", "Emote occurrences per whitespace-separated token, at most 1."),
            Column("is_emote_only", "Bool", "Every token is an emote."),
            Column("emote_names", "String", "The emotes used, space-separated, in order (repeats kept)."),
            Column("sentiment", "Float64", "VADER compound score with the Twitch lexicon, in [-1, 1]."),
            Column("sentiment_label", "LowCardinality(String)", "`negative` (<= -0.05), `neutral` or `positive` (>= 0.05)."),
            Column("is_question", "Bool", "The text contains a question mark."),
            Column("is_mention", "Bool", "The message mentions someone with @."),
            Column("is_reply", "Bool", "The message is a reply (has reply_parent_message_id)."),
            Column("is_engagement", "Bool", "A question, a mention or a reply."),
            Column("engagement_kinds", "String", "Which of `question`, `mention`, `reply`, comma-separated (empty when none)."),
            Column("source_partition", "Int32", "Kafka partition of chat_messages the message was read from (lineage to lake.chat_bronze)."),
            Column("source_offset", "Int64", "Its Kafka offset."),
        ),
        event_time="sent_at",
        iceberg=True,
        partition_key=("message_id",),
    ),
    Output(
        "chat_minute_stats",
        "Per channel and 1-minute window of sent_at: messages, unique chatters, sentiment mean and distribution, engagement, "
        "emote-only share, and chat against the stream (the channel's viewers from game_streams_enriched in the same minute), exactly once.",
        (
            *WINDOW,
            Column("channel", "String", "Channel login."),
            Column("messages", "Int64", "Messages in the window."),
            Column("unique_chatters", "Int64", "Distinct chatters."),
            Column("sentiment_avg", "Float64", "Mean sentiment."),
            Column("negative_messages", "Int64", "Messages with sentiment <= -0.05."),
            Column("neutral_messages", "Int64", "Messages with sentiment strictly between -0.05 and 0.05."),
            Column("positive_messages", "Int64", "Messages with sentiment >= 0.05."),
            Column("engagement_messages", "Int64", "Questions, mentions or replies."),
            Column("non_engagement_messages", "Int64", "The other messages."),
            Column("question_messages", "Int64", "Messages with a question mark."),
            Column("mention_messages", "Int64", "Messages mentioning someone."),
            Column("reply_messages", "Int64", "Replies."),
            Column("emote_only_messages", "Int64", "Messages made only of emotes."),
            Column("emote_only_share", "Float64", "emote_only_messages / messages."),
            Column("emotes", "Int64", "Emote occurrences."),
            Column("viewers_avg", "Nullable(Float64)", "Average viewers of the channel's stream snapshots in the minute (NULL: no snapshot)."),
            Column("viewers_max", "Nullable(Int32)", "Peak viewers in the minute."),
            Column("game_name", "Nullable(String)", "Game of the stream in the minute."),
            Column("title", "Nullable(String)", "Stream title in the minute."),
            Column("messages_per_1k_viewers", "Nullable(Float64)", "messages * 1000 / viewers_avg (NULL without viewers)."),
            Column("chatters_per_1k_viewers", "Nullable(Float64)", "unique_chatters * 1000 / viewers_avg (NULL without viewers)."),
        ),
        event_time="window_end",
        iceberg=True,
        partition_key=("window_start", "channel"),
    ),
    Output(
        "chat_top_emotes",
        "Per channel and 1-minute window of sent_at, the 10 most used emotes, ranked.",
        (
            *WINDOW,
            Column("channel", "String", "Channel login."),
            Column("rank_in_window", "Int32", "1 is the most used; ties broken by emote name."),
            Column("emote", "String", "Emote name as typed."),
            Column("uses", "Int64", "Occurrences in the window."),
            Column("chatters", "Int64", "Distinct chatters who used it."),
        ),
        event_time="window_end",
        iceberg=True,
        partition_key=("window_start", "channel", "rank_in_window"),
    ),
)

JOBS: tuple[Job, ...] = (
    Job(
        "enrich_streams",
        "Validates and deduplicates stream snapshots, joins each with the profile and game valid at its event time (to the second).",
        "flink_jobs.enrich",
        inputs=("game_streams", "twitch_users", "twitch_games"),
        outputs=("game_streams_enriched", "late_events", "dead_letter"),
        sql=("enrich_streams.sql",),
    ),
    Job(
        "aggregate_streams",
        "1-minute window aggregates of the enriched snapshots into Kafka and the Iceberg gold tables.",
        "flink_jobs.aggregate",
        inputs=("game_streams_enriched",),
        outputs=("game_minute_stats", "language_minute_stats", "share_minute_stats", "stream_duration_stats", "top_streams", "late_events"),
        sql=("aggregate_tables.sql", "aggregate_windows.sql"),
        minute_windows=True,
    ),
    Job(
        "chat_enrich",
        "Chat bronze and silver: every chat_messages record once in the Iceberg table lake.chat_bronze with its parse status "
        "(malformed ones also to dead_letter); valid messages deduplicated by message_id and scored (vectorized Python UDF).",
        "flink_jobs.chat_enrich",
        inputs=("chat_messages",),
        outputs=("chat_bronze", "chat_silver", "late_events", "dead_letter"),
        sql=("chat_enrich.sql",),
    ),
    Job(
        "chat_aggregate",
        "Chat gold: per channel and minute statistics joined with the channel's stream viewers, and the top emotes.",
        "flink_jobs.chat_aggregate",
        inputs=("chat_silver", "game_streams_enriched"),
        outputs=("chat_minute_stats", "chat_top_emotes", "late_events"),
        sql=("chat_aggregate_tables.sql", "chat_aggregate_windows.sql", "chat_aggregate_outputs.sql"),
        minute_windows=True,
    ),
)

#: Who writes the raw topics (outside Flink): producer name -> topics.
PRODUCERS: dict[str, tuple[str, ...]] = {
    "helix": ("game_streams", "twitch_users", "twitch_games", "producer_dead_letter"),
    "chat": ("chat_messages", "producer_dead_letter"),
    "synthetic": ("game_streams", "twitch_users", "twitch_games", "chat_messages", "producer_dead_letter"),
}

#: Who reads topics outside Flink: consumer name -> topics.
CONSUMERS: dict[str, tuple[str, ...]] = {
    "clickhouse_sink": tuple(o.name for o in OUTPUTS if o.clickhouse),
}
#: Where records nobody processes further end up, read by people (and `check`), not by a job.
TERMINAL_TOPICS: tuple[str, ...] = ("producer_dead_letter", "dead_letter", "late_events")


def _index(items, kind: str):
    by_name = {i.name: i for i in items}

    def lookup(name: str):
        try:
            return by_name[name]
        except KeyError:
            raise KeyError(f"no {kind} named {name!r} in connectors/catalog.py; known: {', '.join(by_name)}") from None

    return lookup


topic = _index(TOPICS, "topic")
output = _index(OUTPUTS, "output")
job = _index(JOBS, "job")


def streaming_jobs() -> tuple[Job, ...]:
    """The jobs `start` keeps running, in the order it submits them."""
    return tuple(j for j in JOBS if j.streaming)


def sink_outputs() -> tuple[Output, ...]:
    return tuple(o for o in OUTPUTS if o.clickhouse)


def writers(topic_name: str) -> list[str]:
    """Who writes a topic: producers and jobs (the sink writes `dead_letter` too)."""
    found = [p for p, ts in PRODUCERS.items() if topic_name in ts] + [j.name for j in JOBS if topic_name in j.outputs]
    return found + (["clickhouse_sink"] if topic_name == "dead_letter" else [])


def readers(topic_name: str) -> list[str]:
    return [j.name for j in JOBS if topic_name in j.inputs] + [c for c, ts in CONSUMERS.items() if topic_name in ts]


def markdown() -> str:
    """The README's pipeline tables (between ``<!-- catalog:begin/end -->``), written by `settings --write`."""
    lines = ["| Topic | Key | Cleanup, retention | Written by | Read by | What it holds |", "| --- | --- | --- | --- | --- | --- |"]
    for t in TOPICS:
        retention = "forever" if t.retention_ms < 0 else f"{t.retention_ms // DAY_MS} d"
        lines.append(f"| `{t.name}` | {f'`{t.key}`' if t.key else '—'} | {t.cleanup_policy}, {retention} | {', '.join(writers(t.name))} | "
                     f"{', '.join(readers(t.name)) or '—'} | {t.doc} |")
    lines += ["", "| Job | Reads | Writes | What it does |", "| --- | --- | --- | --- |"]
    for j in JOBS:
        lines.append(f"| `{j.name}` | {', '.join(j.inputs)} | {', '.join(j.outputs)} | {j.doc} |")
    lines += ["", "| Output | ClickHouse | Iceberg | Event time | Row key | What it holds |", "| --- | --- | --- | --- | --- | --- |"]
    for o in OUTPUTS:
        lines.append(f"| `{o.name}` | {'yes' if o.clickhouse else '—'} | {f'`lake.{o.name}`' if o.iceberg else '—'} | `{o.event_time}` | "
                     f"{', '.join(o.partition_key)} | {o.doc} |")
    return "\n".join(lines)
