"""Reading what Flink jobs commit to Kafka, the way a downstream consumer does (read_committed)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any, Callable

from confluent_kafka import Consumer, KafkaError, TopicPartition

from connectors.kafka import client_config
from connectors.topics import is_heartbeat_key
from twitch_pipeline.errors import PlatformError, wait_until
from twitch_pipeline.settings import Settings

TIMESTAMP_COLUMNS = {"window_start", "window_end", "data_retrieved_at", "detected_at"}


def read_committed(settings: Settings, topic: str, until: Callable[[list[dict[str, Any]]], bool] = lambda _: True,
                   timeout_s: float = 60, heartbeats: list[tuple[int, dict[str, Any]]] | None = None) -> list[dict[str, Any]]:
    """Every committed record of ``topic`` but heartbeats, once ``until(records)`` holds and each partition is
    read to its end. Heartbeats, as (partition, value), go to ``heartbeats`` when a list is given."""
    consumer = Consumer(client_config(settings, **{
        "group.id": f"test-{uuid.uuid4()}", "isolation.level": "read_committed", "enable.partition.eof": True,
        "enable.auto.commit": False,
    }))
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    values: list[dict[str, Any]] = []
    at_end: set[int] = set()

    def drained() -> bool:
        for msg in consumer.consume(500, timeout=0.5):
            if msg.error() is None:
                at_end.discard(msg.partition())
                if not is_heartbeat_key(msg.key()):
                    values.append(json.loads(msg.value()))
                elif heartbeats is not None:
                    heartbeats.append((msg.partition(), json.loads(msg.value())))
            elif msg.error().code() == KafkaError._PARTITION_EOF:
                at_end.add(msg.partition())
            else:
                raise AssertionError(f"reading {topic}: {msg.error()}")
        return at_end == set(partitions) and until(values)

    try:
        wait_until(drained, timeout_s, f"committed output on {topic}", interval_s=0)
    except PlatformError as exc:
        seen = sorted({str(v.get("event_id", v.get("window_start"))) for v in values})
        raise AssertionError(f"{exc}; read {len(values)} records: {seen[:50]}") from None
    finally:
        consumer.close()
    return values


def with_datetimes(row: dict[str, Any]) -> dict[str, Any]:
    return {k: datetime.fromisoformat(v.replace("Z", "+00:00")) if k in TIMESTAMP_COLUMNS and v else v for k, v in row.items()}
