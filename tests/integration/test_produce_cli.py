"""`twitch-pipeline produce` into a real Kafka broker, reconciled record by record with its summary.

The helpers at the top (one shared broker, reading what a run wrote, an aiohttp server on a thread)
are used by the Helix and chat ingestion tests too.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections import Counter
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from connectors.catalog import TOPICS
from connectors.kafka import admin_client, client_config
from connectors.topics import ensure_topics
from producers.contracts import MAX_EVENT_BYTES, parse_iso_ms, violations
from producers.heartbeat import HEARTBEAT_KEY
from producers.publisher import EVENT_TOPICS, KEY_FIELD
from tests.cli import run_cli
from twitch_pipeline.platform.process import free_port

pytestmark = pytest.mark.integration

def end_offsets(settings, topics=EVENT_TOPICS) -> dict[tuple[str, int], int]:
    consumer = Consumer(client_config(settings, **{"group.id": f"probe-{uuid.uuid4()}"}))
    try:
        metadata = consumer.list_topics(timeout=10)
        return {(t, p): consumer.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
                for t in topics for p in metadata.topics[t].partitions}
    finally:
        consumer.close()


def read_since(settings, start: dict[tuple[str, int], int]) -> list[Any]:
    """Every record written after ``start`` (from end_offsets) up to the current end of each partition."""
    end = end_offsets(settings, sorted({t for t, _ in start}))
    consumer = Consumer(client_config(settings, **{"group.id": f"read-{uuid.uuid4()}", "enable.auto.commit": False}))
    wanted = {tp: off for tp, off in end.items() if off > start[tp]}
    consumer.assign([TopicPartition(t, p, start[(t, p)]) for (t, p) in wanted])
    records, position = [], dict(start)
    try:
        while any(position[tp] < off for tp, off in wanted.items()):
            msg = consumer.poll(5.0)
            assert msg is not None, f"records missing: read up to {position}, expected {wanted}"
            assert msg.error() is None, msg.error()
            records.append(msg)
            position[(msg.topic(), msg.partition())] = msg.offset() + 1
    finally:
        consumer.close()
    return records


class ServerThread:
    """An aiohttp application served on 127.0.0.1 from its own thread (the code under test owns the main loop)."""

    def __init__(self, app):
        from aiohttp import web

        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", self.port).start())
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def call(self, coro, timeout: float = 10.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.call(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def is_malformed(topic: str, value: bytes) -> bool:
    if len(value) > MAX_EVENT_BYTES:
        return True
    try:
        return bool(violations(topic, json.loads(value.decode("utf-8"))))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return True


def identity(topic: str, event: dict) -> str:
    return event["event_id"] if topic == "game_streams" else event["message_id"] if topic == "chat_messages" else json.dumps(event, sort_keys=True)


def test_produce_reconciles_with_kafka(kafka, tmp_path):
    summary_path = tmp_path / "summary.json"
    before = end_offsets(kafka)
    done = run_cli(kafka, "produce", "--source", "synthetic", "--events", "6000", "--duplicates", "0.1", "--malformed", "0.05",
                   "--seed", "11", "--start-time", "2026-11-21T11:05:00Z", "--summary", str(summary_path), timeout=300)
    assert done.returncode == 0, done.stderr
    assert "game_streams" in done.stdout and "6,000 events" in done.stdout
    summary = json.loads(summary_path.read_text())
    assert set(EVENT_TOPICS) <= set(summary)
    assert sum(s["sent"] for t, s in summary.items() if t in EVENT_TOPICS) == 6000
    assert sum(s["duplicates"] for s in summary.values()) == 600
    assert sum(s["malformed"] for s in summary.values()) == 300
    for topic in EVENT_TOPICS:
        s = summary[topic]
        assert s["sent"] == s["unique"] + s["duplicates"] + s["malformed"] and s["failed"] == 0 and s["unique"] > 0

    records = read_since(kafka, before)
    heartbeats = [m for m in records if m.key() == HEARTBEAT_KEY]
    events = [m for m in records if m.key() != HEARTBEAT_KEY]
    per_topic: dict[str, Counter] = {t: Counter() for t in EVENT_TOPICS}
    valid_times, seen = [], Counter()
    for msg in events:
        topic, value = msg.topic(), msg.value()
        if is_malformed(topic, value):
            per_topic[topic]["malformed"] += 1
            continue
        event = json.loads(value)
        assert msg.key().decode() == event[KEY_FIELD[topic]]
        seen[(topic, identity(topic, event))] += 1
        per_topic[topic]["valid"] += 1
        valid_times.append(parse_iso_ms(event.get("sent_at") or event["data_retrieved_at"]))
    for topic in EVENT_TOPICS:
        s = summary[topic]
        assert per_topic[topic]["malformed"] == s["malformed"], topic
        assert per_topic[topic]["valid"] == s["unique"] + s["duplicates"], topic
        assert sum(1 for (t, _), n in seen.items() if t == topic) == s["unique"], topic

    # the bounded run ends with heartbeats on every partition, one and two drain horizons past the last event
    partitions = {tp for tp in before}
    horizon = int(kafka.drain_horizon_s * 1000)
    finals = {max(valid_times) + horizon, max(valid_times) + 2 * horizon}
    for tp in partitions:
        times = [parse_iso_ms(json.loads(m.value())["data_retrieved_at"]) for m in heartbeats if (m.topic(), m.partition()) == tp]
        assert set(times[-2:]) == finals, tp


def test_ensure_topics_is_idempotent_and_applies_specs(kafka):
    from confluent_kafka.admin import ConfigResource

    from connectors.topics import TWITCH_USERS

    assert "0 created" in ensure_topics(kafka)
    admin = admin_client(kafka)
    metadata = admin.list_topics(timeout=10)
    assert {t.name for t in TOPICS} <= set(metadata.topics)
    assert len(metadata.topics["game_streams"].partitions) == kafka.kafka_partitions
    resource = ConfigResource(ConfigResource.Type.TOPIC, TWITCH_USERS.name)
    config = admin.describe_configs([resource])[resource].result(timeout=10)
    assert config["cleanup.policy"].value == "compact"


def test_produce_reports_bad_arguments(kafka):
    done = run_cli(kafka, "produce", "--source", "synthetic", "--events", "10", "--duplicates", "0.6", "--malformed", "0.5")
    assert done.returncode == 2 and "below 1" in done.stderr
    done = run_cli(kafka, "produce", "--source", "twitch", "--events", "10")
    assert done.returncode == 2 and "TWITCH_CLIENT_ID" in done.stderr
