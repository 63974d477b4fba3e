"""Everything a source hands over goes through here: contract check, fault injection, Kafka, counting.

Both sources (synthetic and Twitch) publish plain event dicts; this module turns them into Kafka
records with the topic's key, injects the requested duplicates and malformed events, and counts
per topic what was sent and what failed delivery, so a run can be reconciled with what arrived
downstream. Nothing is dropped silently: a delivery failure is counted (and makes the run exit
non-zero), an event that breaks its own contract goes to ``producer_dead_letter`` with the reason.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from connectors.kafka import client_config, produce_blocking
from connectors.topics import (
    CHAT_MESSAGES,
    GAME_STREAMS,
    PRODUCER_DEAD_LETTER,
    TWITCH_GAMES,
    TWITCH_USERS,
)
from producers.contracts import encode, violations
from producers.faults import DUPLICATE, MALFORMED, UNIQUE, FaultPlan, malformed_value
from producers.heartbeat import HEARTBEAT_KEY, emit_heartbeats
from twitch_pipeline.errors import StateLog
from twitch_pipeline.settings import Settings

_LOG = logging.getLogger("producers")

#: The field of each event that is its Kafka key (keeps one entity's events in order on one partition).
KEY_FIELD = {t.name: t.key for t in (GAME_STREAMS, TWITCH_USERS, TWITCH_GAMES, CHAT_MESSAGES)}
EVENT_TOPICS = tuple(KEY_FIELD)

# How many recent events a duplicate or malformed event may be drawn from (a retry storm replays
# records from the last few seconds, not from last week).
_RECENT = 512


@dataclass
class TopicStats:
    sent: int = 0
    unique: int = 0
    duplicates: int = 0
    malformed: int = 0
    failed: int = 0  # delivery failed after the producer's own retries
    rejected: int = 0  # broke its contract; sent to producer_dead_letter instead


def producer_config(settings: Settings, on_delivery, on_error=None) -> dict[str, Any]:
    return client_config(
        settings,
        **{
            "enable.idempotence": True,  # retries cannot duplicate or reorder: the only duplicates are the injected ones
            "acks": "all",
            "compression.type": settings.producer_compression,
            "linger.ms": settings.producer_linger_ms,
            "batch.size": settings.producer_batch_size,
            "queue.buffering.max.messages": 500_000,
            # Never give up on a record: while the broker is away librdkafka keeps it queued and delivers it
            # when the broker returns (idempotence keeps that exactly once). A finite timeout turned a
            # 2-minute outage into lost records; a full queue blocks `produce` instead (back-pressure).
            "delivery.timeout.ms": 0,
            "on_delivery": on_delivery,
            **({"error_cb": on_error} if on_error else {}),
        },
    )


class Publisher:
    """Thread-safe: the chat client publishes from its own thread while the poller runs in another."""

    def __init__(self, settings: Settings, faults: FaultPlan, fault_rng: random.Random, *, validate: bool | None = None,
                 producer_factory=None):
        from confluent_kafka import Producer

        self.faults = faults
        self.bootstrap = settings.bootstrap_servers
        self.rng = fault_rng
        self.validate = settings.producer_validate if validate is None else validate
        self.stats: dict[str, TopicStats] = {t: TopicStats() for t in (*EVENT_TOPICS, PRODUCER_DEAD_LETTER.name)}
        self.heartbeat_failures = 0
        self.max_event_time: int | None = None
        self.malformed_kinds: dict[str, int] = {}
        self._recent: deque[tuple[str, bytes, bytes, dict[str, Any]]] = deque(maxlen=_RECENT)
        self._lock = threading.Lock()
        self._partitions: dict[str, list[int]] = {}  # per topic, for heartbeats while metadata is unavailable
        # Resuming a bounded run (producers/progress.py): slots before `replay_until` are regenerated, not sent;
        # malformed events in `resend_windows` may have been sent by the run that died, and are counted.
        self.slots = 0
        self.replay_until = 0
        self.resend_windows: list[list[int]] = []
        self.resent_malformed: dict[str, int] = {}
        self._muted = False
        self.health = StateLog(_LOG.warning, path=settings.state_file("producer"))
        self.producer = (producer_factory or Producer)(producer_config(settings, self._delivered, self._kafka_error))

    # -- sending ------------------------------------------------------------------------------------
    def publish(self, topic: str, event: dict[str, Any], event_time_ms: int) -> bool:
        """Send ``event`` (preceded by any faults its slot draws). False once a bounded run is complete."""
        with self._lock:
            while not self.faults.exhausted:
                kind = self.faults.next(can_fault=bool(self._recent))
                self._muted = self.replaying
                self.slots += 1
                if kind == UNIQUE:
                    self._send_valid(topic, event, event_time_ms)
                    return True
                self._send_fault(kind)
            return False

    @property
    def done(self) -> bool:
        return self.faults.exhausted

    @property
    def replaying(self) -> bool:
        """Regenerating slots an earlier run of the same bounded run already delivered: nothing goes to Kafka."""
        return self.slots < self.replay_until

    def _send_valid(self, topic: str, event: dict[str, Any], event_time_ms: int) -> None:
        key = str(event.get(KEY_FIELD[topic], "")).encode()
        if self.validate:
            errors = violations(topic, event)
            if errors:
                self._reject(topic, key, event, errors)
                return
        value = encode(event)
        self._produce(topic, key, value)
        stats = self.stats[topic]
        stats.sent += 1
        stats.unique += 1
        self._recent.append((topic, key, value, event))
        if self.max_event_time is None or event_time_ms > self.max_event_time:
            self.max_event_time = event_time_ms

    def _send_fault(self, kind: str) -> None:
        topic, key, value, event = self._recent[self.rng.randrange(len(self._recent))]
        stats = self.stats[topic]
        if kind == DUPLICATE:
            self._produce(topic, key, value)  # byte-identical: same event_id / message_id
            stats.duplicates += 1
        else:
            assert kind == MALFORMED
            breakage, broken = malformed_value(self.rng, topic, event)
            self._produce(topic, key, broken)
            stats.malformed += 1
            self.malformed_kinds[breakage] = self.malformed_kinds.get(breakage, 0) + 1
            slot = self.slots - 1
            copies = sum(1 for start, end in self.resend_windows if start <= slot < end)
            if copies:
                self.resent_malformed[topic] = self.resent_malformed.get(topic, 0) + copies
        stats.sent += 1

    def _reject(self, topic: str, key: bytes, event: dict[str, Any], errors: list[str]) -> None:
        _LOG.warning("event for %s breaks its contract (%s); sent to %s", topic, "; ".join(errors[:3]), PRODUCER_DEAD_LETTER.name)
        record = {"topic": topic, "key": key.decode(errors="replace"), "errors": errors, "event": event}
        self._produce(PRODUCER_DEAD_LETTER.name, topic.encode(), encode(record))
        self.stats[topic].rejected += 1
        self.stats[PRODUCER_DEAD_LETTER.name].sent += 1

    def _produce(self, topic: str, key: bytes, value: bytes) -> None:
        if self._muted:
            return
        produce_blocking(self.producer, topic, value, key, wait_s=0.05)

    def heartbeats(self, event_time_ms: int, topics=EVENT_TOPICS) -> int:
        if self.replaying:
            return 0  # the slots are not sent; their event time must not be announced either
        with self._lock:
            return emit_heartbeats(self.producer, topics, event_time_ms, known_partitions=self._partitions)

    # -- delivery -----------------------------------------------------------------------------------
    def _kafka_error(self, err) -> None:
        """librdkafka's client-level errors: an unreachable broker is waited out (records stay queued), said once."""
        if err.fatal():
            _LOG.error("Kafka producer error: %s", err.str())
        else:
            self.health.failing(f"Kafka at {self.bootstrap}", err.str())

    def _delivered(self, err, msg) -> None:
        if err is None:
            self.health.ok()
            return
        if msg.key() == HEARTBEAT_KEY:
            self.heartbeat_failures += 1
            return
        self.stats.setdefault(msg.topic(), TopicStats()).failed += 1
        _LOG.error("delivery to %s failed: %s", msg.topic(), err.str())

    def poll(self) -> None:
        self.producer.poll(0)

    def deliver_all(self, stop: threading.Event) -> bool:
        """Wait until Kafka acknowledged everything handed over (outages are waited out); False if stopped first."""
        while self.producer.flush(1.0):
            if stop.is_set():
                return False
        return True

    def flush(self, timeout_s: float = 60.0) -> int:
        """Wait for every outstanding delivery report; returns how many are still undelivered."""
        left = self.producer.flush(timeout_s)
        if left:
            _LOG.error("%d records still undelivered after %.0fs", left, timeout_s)
        return left

    # -- reporting ----------------------------------------------------------------------------------
    def summary(self) -> dict[str, dict[str, int]]:
        return {topic: asdict(stats) for topic, stats in self.stats.items() if topic in EVENT_TOPICS or stats.sent}
