"""Heartbeats: tiny records on every partition that carry the producer's current event time.

An event-time job only closes a window once the watermark of *every* partition it reads has passed
it. A partition that receives no events (a quiet channel's key, or simply the end of a bounded run)
would hold every window open forever; a heartbeat advances it. Consumers recognise heartbeats by the
key ``__heartbeat__`` (:data:`connectors.topics.HEARTBEAT_KEY`) and drop them after the watermark has seen
them; the enrichment job relays them into its output, so jobs reading that output drain the same way.
"""

from __future__ import annotations

import json
from typing import Iterable

from connectors.kafka import produce_blocking, topic_partitions
from connectors.topics import HEARTBEAT_KEY
from producers.contracts import iso_ms

__all__ = ["HEARTBEAT_KEY", "emit_heartbeats", "heartbeat_value"]


def heartbeat_value(event_time_ms: int) -> bytes:
    return json.dumps({"heartbeat": True, "data_retrieved_at": iso_ms(event_time_ms)}, separators=(",", ":")).encode()


def emit_heartbeats(producer, topics: Iterable[str], event_time: int, timeout_s: float = 10.0,
                    known_partitions: dict[str, list[int]] | None = None) -> int:
    """Write one heartbeat at ``event_time`` (epoch ms) to every partition of each topic; returns how many.

    ``producer`` is a ``confluent_kafka.Producer``; the partition is explicit, so the key's hash does not
    decide where it lands. Delivery is reported through the producer's own delivery callback.

    ``known_partitions`` caches each topic's partitions: while the broker is away, metadata cannot be
    fetched, and the heartbeats are queued for the cached partitions (librdkafka delivers them when the
    broker returns) instead of failing the producer. Without a cache entry the KafkaException propagates.
    """
    from confluent_kafka import KafkaException

    value = heartbeat_value(event_time)
    topics = list(topics)
    cache = known_partitions if known_partitions is not None else {}
    try:
        metadata = producer.list_topics(timeout=timeout_s)
        cache.update({t: topic_partitions(metadata, t) for t in topics})
    except KafkaException:
        if not all(t in cache for t in topics):
            raise
    sent = 0
    for topic in topics:
        for partition in cache[topic]:
            produce_blocking(producer, topic, value, HEARTBEAT_KEY, partition=partition)
            sent += 1
    return sent

