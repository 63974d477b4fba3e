"""Flink-like load for the sink: records written in Kafka transactions, some of them aborted.

Flink's exactly-once Kafka sink commits its output in transactions at each checkpoint; this writes
test and benchmark load the same way, so the sink meets transaction markers and aborted records
(which read_committed must skip) exactly as it does in production.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterable

import orjson

from connectors.kafka import client_config, produce_blocking
from twitch_pipeline.settings import Settings
from twitch_pipeline.timestamps import iso

_BASE = datetime(2026, 11, 21, 11, 0, tzinfo=timezone.utc)


def late_event(i: int, group: str = "") -> dict:
    """A valid `late_events` row; ``group`` goes in stream_id (the benchmark tags transactions with it)."""
    seen = _BASE + timedelta(milliseconds=i)
    return {
        "event_id": f"late-{i}",
        "stream_id": group or f"stream-{i % 5000}",
        "data_retrieved_at": iso(seen),
        "detected_at": iso(seen + timedelta(minutes=2)),
        "reason": "late",
    }


def enriched_stream(i: int) -> dict:
    """A valid `game_streams_enriched` row (the widest Flink output)."""
    seen = _BASE + timedelta(milliseconds=i)
    return {
        "event_id": f"evt-{i}", "stream_id": f"{40000000 + i % 30000}", "user_id": f"{900000 + i % 30000}",
        "user_login": f"streamer{i % 30000}", "user_name": f"Streamer{i % 30000}", "game_id": f"{i % 300}",
        "game_name": f"Game {i % 300}", "stream_type": "live", "title": f"Playing all day, part {i % 97}",
        "viewer_count": (i * 7919) % 50000, "started_at": iso(seen - timedelta(minutes=i % 600)), "language": "en",
        "is_mature": i % 5 == 0, "tags": "English,Chill", "broadcaster_type": ("partner", "affiliate", "")[i % 3],
        "user_description": "Variety streamer", "user_created_at": "2019-05-01T12:00:00.000Z", "data_retrieved_at": iso(seen),
    }


@dataclass
class Produced:
    committed: int = 0  # records in committed transactions
    aborted: int = 0  # records in aborted transactions (must never show up)
    commit_times: dict[int, float] = field(default_factory=dict)  # transaction number → wall time of its commit


def produce_in_transactions(
    settings: Settings,
    topic: str,
    values: Iterable[bytes],
    per_transaction: int = 5000,
    abort: Callable[[int], bool] = lambda _: False,
    pace: Callable[[int], None] = lambda _: None,
) -> Produced:
    """Write ``values`` in transactions of ``per_transaction`` records; ``abort(n)`` aborts transaction n.

    ``pace(n)`` is called before transaction n starts (a benchmark uses it to hold a rate).
    """
    from confluent_kafka import Producer

    producer = Producer(client_config(settings, **{
        "transactional.id": f"loadgen-{uuid.uuid4().hex[:8]}",
        "linger.ms": 5,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 1_000_000,
    }))
    producer.init_transactions(30)
    out = Produced()
    batch: list[bytes] = []

    def finish(number: int) -> None:
        pace(number)
        producer.begin_transaction()
        for value in batch:
            produce_blocking(producer, topic, value)
        if abort(number):
            # Delivered first, so that the abort never races produce requests still in flight: a CI run once had the
            # broker refuse an abort (INVALID_TXN_STATE, fatal to the producer). The records then land and are aborted.
            producer.flush(60)
            producer.abort_transaction(60)
            out.aborted += len(batch)
        else:
            producer.commit_transaction(60)
            out.committed += len(batch)
            out.commit_times[number] = time.time()
        batch.clear()

    number = 0
    for value in values:
        batch.append(value)
        if len(batch) == per_transaction:
            finish(number)
            number += 1
    if batch:
        finish(number)
    return out



def encode(row: dict) -> bytes:
    return orjson.dumps(row)
