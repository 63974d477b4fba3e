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


def emit_heartbeats(producer, topics: Iterable[str], event_time: int, timeout_s: float = 10.0) -> int:
    """Write one heartbeat at ``event_time`` (epoch ms) to every partition of each topic; returns how many.

    ``producer`` is a ``confluent_kafka.Producer``; the partition is explicit, so the key's hash does not
    decide where it lands. Delivery is reported through the producer's own delivery callback.
    """
    value = heartbeat_value(event_time)
    topics = list(topics)
    metadata = producer.list_topics(timeout=timeout_s)
    sent = 0
    for topic in topics:
        for partition in topic_partitions(metadata, topic):
            produce_blocking(producer, topic, value, HEARTBEAT_KEY, partition=partition)
            sent += 1
    return sent

