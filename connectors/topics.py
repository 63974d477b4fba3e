"""Every Kafka topic of the pipeline, in one place: name, key, cleanup policy, retention.

Producers, Flink jobs and the ClickHouse sink all refer to these names; `twitch-pipeline up` creates
the topics (through :func:`ensure_topics`, a post-up hook) before any job starts, because the broker
refuses to auto-create topics and a Flink source on a missing topic fails at start.
"""

from __future__ import annotations

from dataclasses import dataclass

from twitch_pipeline.settings import Settings

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

#: Records keyed with this prefix are heartbeats: they carry event time only (see producers/heartbeat.py)
#: and every consumer skips them once its watermark has seen them.
HEARTBEAT_KEY = b"__heartbeat__"


def is_heartbeat_key(key: bytes | None) -> bool:
    return key is not None and key.startswith(HEARTBEAT_KEY)


def heartbeat_keys(partitions: int) -> list[str]:
    """One heartbeat key per partition, the i-th of which Kafka's default partitioner sends to partition i.

    A Flink sink partitions by key, so a job relays a heartbeat to every partition of its output by writing
    it once under each of these keys (``__heartbeat__<n>`` with the smallest fitting n).
    """
    from connectors.kafka import default_partition

    keys: dict[int, str] = {}
    n = 0
    while len(keys) < partitions:
        key = f"{HEARTBEAT_KEY.decode()}{n}"
        keys.setdefault(default_partition(key.encode(), partitions), key)
        n += 1
    return [keys[p] for p in range(partitions)]


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str
    doc: str
    cleanup_policy: str = "delete"  # "compact" keeps the latest value per key (a changelog of entities)
    retention_ms: int = 7 * DAY_MS  # -1 keeps forever; compacted topics keep every key's latest value
    partitions: int | None = None  # None means the `kafka_partitions` setting

    def config(self) -> dict[str, str]:
        return {"cleanup.policy": self.cleanup_policy, "retention.ms": str(self.retention_ms)}


# Raw events written by the producers (data contracts in producers/schemas/<name>.schema.json).
GAME_STREAMS = TopicSpec("game_streams", "stream_id", "one snapshot per live stream per Helix poll")
TWITCH_USERS = TopicSpec("twitch_users", "user_id", "broadcaster profiles, one record per observed version", "compact", -1)
TWITCH_GAMES = TopicSpec("twitch_games", "game_id", "games (categories), one record per observed version", "compact", -1)
CHAT_MESSAGES = TopicSpec("chat_messages", "channel", "chat messages of the ingested channels", retention_ms=3 * DAY_MS)
PRODUCER_DEAD_LETTER = TopicSpec("producer_dead_letter", "source topic", "events a producer could not send as valid (schema violations), with the error", retention_ms=14 * DAY_MS)

SOURCE_TOPICS = (GAME_STREAMS, TWITCH_USERS, TWITCH_GAMES, CHAT_MESSAGES)

# Written by the Flink jobs and the ClickHouse sink; created up front so jobs can start in any order.
DERIVED_TOPICS = (
    TopicSpec("game_streams_enriched", "event_id", "stream snapshots joined with the broadcaster profile valid at poll time"),
    TopicSpec("game_minute_stats", "game_id", "per game and minute: streams, viewers"),
    TopicSpec("language_minute_stats", "language", "per language and minute: streams, viewers"),
    TopicSpec("share_minute_stats", "dimension", "per minute: mature and broadcaster-type shares"),
    TopicSpec("stream_duration_stats", "game_id", "stream durations per game"),
    TopicSpec("top_streams", "window", "top streams by viewers per window"),
    TopicSpec("late_events", "source topic", "events that arrived behind the watermark", retention_ms=14 * DAY_MS),
    TopicSpec("chat_messages_silver", "channel", "parsed and enriched chat messages"),
    TopicSpec("dead_letter", "source topic", "records the jobs and the sink could not process", retention_ms=14 * DAY_MS),
)

ALL_TOPICS: tuple[TopicSpec, ...] = (*SOURCE_TOPICS, PRODUCER_DEAD_LETTER, *DERIVED_TOPICS)


def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> str:
    """Create the topics that do not exist yet (existing ones are left as they are); idempotent."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import NewTopic

    from connectors.kafka import admin_client
    from twitch_pipeline.platform.process import PlatformError, wait_until

    admin = admin_client(settings)
    try:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    except KafkaException as err:
        raise PlatformError(f"cannot list Kafka topics at {settings.bootstrap_servers}: {err}") from None
    missing = [t for t in ALL_TOPICS if t.name not in existing]
    if missing:
        futures = admin.create_topics(
            [NewTopic(t.name, t.partitions or settings.kafka_partitions, 1, config=t.config()) for t in missing],
            request_timeout=timeout_s,
        )
        for name, future in futures.items():
            try:
                future.result(timeout=timeout_s)
            except KafkaException as err:
                if err.args[0].code() != _topic_already_exists():  # created meanwhile by someone else: fine
                    raise PlatformError(f"cannot create Kafka topic {name}: {err.args[0].str()}") from None
        wait_until(lambda: _have_leaders(admin, [t.name for t in missing]), timeout_s, "leaders for the new Kafka topics")
    return f"topics      {len(missing)} created, {len(ALL_TOPICS) - len(missing)} already there"


def _have_leaders(admin, names: list[str]) -> bool:
    """Created is not yet usable: a client that comes right after `up` needs every partition served.

    Metadata names a leader before the broker has loaded the partition; asking the leader for an
    offset is what proves it is ready.
    """
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec

    topics = admin.list_topics(timeout=5).topics
    wanted = [TopicPartition(n, p) for n in names for p in (topics[n].partitions if n in topics else {})]
    if len(wanted) < len(names):
        return False
    futures = admin.list_offsets({tp: OffsetSpec.latest() for tp in wanted}, request_timeout=5)
    return all(f.result(timeout=5) is not None for f in futures.values())


def _topic_already_exists() -> int:
    from confluent_kafka import KafkaError

    return KafkaError.TOPIC_ALREADY_EXISTS
