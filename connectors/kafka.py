"""Kafka clients configured from the settings (one place for bootstrap and client defaults)."""

from __future__ import annotations

import logging
from typing import Any

from twitch_pipeline.settings import Settings

# librdkafka logs every refused connection (several a second while a broker is down); route its logs through
# `logging` and keep them quiet unless a user turns the `twitch_pipeline.kafka` logger down to DEBUG. The same
# errors reach the clients through `error_cb` and message errors, where they are handled and said once.
_LOG = logging.getLogger("twitch_pipeline.kafka")
_LOG.setLevel(logging.CRITICAL)


def client_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    return {"bootstrap.servers": settings.bootstrap_servers, "logger": _LOG, **overrides}


def admin_client(settings: Settings):
    from confluent_kafka.admin import AdminClient

    return AdminClient(client_config(settings, **{"socket.timeout.ms": 2000}))


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash of a serialized key, as a signed 32-bit int (``Utils.murmur2`` in Java)."""
    m, r = 0x5BD1E995, 24
    length = len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = data[whole:]
    if tail:
        for shift, byte in reversed(list(enumerate(tail))):
            h ^= byte << (8 * shift)
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def default_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (Java clients, Flink's Kafka sink) gives a keyed record."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def topic_partitions(metadata, topic: str) -> list[int]:
    """The partitions of ``topic`` in cluster ``metadata`` (from any client's ``list_topics``); a clear error
    when the topic does not exist."""
    meta = metadata.topics.get(topic)
    if meta is None or meta.error is not None or not meta.partitions:
        raise LookupError(f"topic {topic!r} has no partitions on the broker (create it with `twitch-pipeline up`)")
    return sorted(meta.partitions)


def partition_count(settings: Settings, topic: str, timeout_s: float = 10.0) -> int:
    return len(topic_partitions(admin_client(settings).list_topics(topic, timeout=timeout_s), topic))


def produce_blocking(producer, topic: str, value: bytes, key: bytes | None = None, *, partition: int | None = None, on_delivery=None, wait_s: float = 0.1) -> None:
    """Produce one record, waiting while librdkafka's local queue is full; never drops a record.

    A full queue means the broker is slow or away (an outage): librdkafka keeps every queued record and
    delivers it when the broker returns, so waiting here is back-pressure, not loss.
    """
    kwargs: dict[str, Any] = {"key": key}
    if partition is not None:
        kwargs["partition"] = partition
    if on_delivery is not None:
        kwargs["on_delivery"] = on_delivery
    while True:
        try:
            producer.produce(topic, value, **kwargs)
            return
        except BufferError:
            producer.poll(wait_s)

