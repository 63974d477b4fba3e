"""Creating the catalog's Kafka topics, and the heartbeat records every topic carries.

`twitch-pipeline up` creates every topic of :data:`connectors.catalog.TOPICS` (through :func:`ensure_topics`)
before any job starts, because the broker refuses to auto-create topics and a Flink source on a missing
topic fails at start.
"""

from __future__ import annotations

from connectors import catalog
from twitch_pipeline.settings import Settings

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


# Handles on the raw topics for the producers; every topic is declared in connectors/catalog.py.
GAME_STREAMS = catalog.topic("game_streams")
TWITCH_USERS = catalog.topic("twitch_users")
TWITCH_GAMES = catalog.topic("twitch_games")
CHAT_MESSAGES = catalog.topic("chat_messages")
PRODUCER_DEAD_LETTER = catalog.topic("producer_dead_letter")


def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> str:
    """Create the topics that do not exist yet (existing ones are left as they are); idempotent."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import NewTopic

    from connectors.kafka import admin_client
    from twitch_pipeline.errors import PlatformError, wait_until

    admin = admin_client(settings)
    try:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    except KafkaException as err:
        raise PlatformError(f"cannot list Kafka topics at {settings.bootstrap_servers}: {err}") from None
    missing = [t for t in catalog.TOPICS if t.name not in existing]
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
    return f"topics      {len(missing)} created, {len(catalog.TOPICS) - len(missing)} already there"


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
