"""The Kafka ends of the sink: a read_committed consumer that resumes where the state table says, and
the dead-letter producer."""

from __future__ import annotations

import logging
import socket
import time
from typing import Sequence

import orjson

from connectors.kafka import client_config, produce_blocking
from connectors.sink.batching import SourceRecord, TopicPartition
from connectors.sink.ports import DeadLetter, OnAssign, OnRevoke
from twitch_pipeline.errors import PlatformError, StateLog
from twitch_pipeline.settings import Settings
from twitch_pipeline.timestamps import now_iso

_LOG = logging.getLogger("twitch_pipeline.sink")
#: Seconds without a broker error after which an idle source counts as connected again. librdkafka's reconnect
#: back-off grows to 10 s (reconnect.backoff.max.ms), so while a broker is away its errors come up to 10 s apart.
QUIET_OK_S = 30.0
DELIVERY_TIMEOUT_S = 60.0


class KafkaSource:
    """Consumer-group member; offsets are never committed automatically (the loader commits after each batch)."""

    def __init__(self, settings: Settings):
        from confluent_kafka import Consumer

        self._bootstrap = settings.bootstrap_servers
        self._last_error_at = 0.0
        self._callback_error: Exception | None = None
        self.health: StateLog | None = None  # set by the runner: broker outages are said once, not per poll

        self.consumer = Consumer(client_config(settings, **{
            "group.id": settings.sink_group,
            # Broker outages reach a consumer only through this callback, not as message errors.
            "error_cb": self._kafka_error,
            # Static membership: a sink restarted after a crash rejoins as the same member and gets its
            # partitions back at once, instead of waiting for the dead member's session to time out.
            "group.instance.id": settings.sink_instance_id or f"{settings.sink_group}-{socket.gethostname()}",
            "isolation.level": "read_committed",  # only what Flink's checkpoints committed
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",  # a partition the sink never loaded is loaded from its start
        }))

    def _kafka_error(self, err) -> None:
        from confluent_kafka import KafkaException

        if err.fatal():
            self._callback_error = KafkaException(err)
            return
        self._last_error_at = time.monotonic()
        if self.health is not None:
            self.health.failing(f"Kafka at {self._bootstrap}", err.str())

    def subscribe(self, topics: Sequence[str], on_assign: OnAssign, on_revoke: OnRevoke) -> None:
        # An exception escaping a rebalance callback comes out of librdkafka as a garbled SystemError;
        # keep it and raise it from poll() instead.
        def assigned(consumer, partitions) -> None:
            try:
                positions = on_assign([(p.topic, p.partition) for p in partitions])
            except Exception as exc:  # noqa: BLE001
                self._callback_error = exc
                return
            for p in partitions:
                position = positions.get((p.topic, p.partition))
                if position is not None:
                    p.offset = position
            consumer.assign(partitions)

        def revoked(consumer, partitions) -> None:
            try:
                on_revoke([(p.topic, p.partition) for p in partitions])
            except Exception as exc:  # noqa: BLE001
                self._callback_error = exc

        self.consumer.subscribe(list(topics), on_assign=assigned, on_revoke=revoked, on_lost=revoked)

    def poll(self, max_records: int, timeout_s: float) -> list[SourceRecord]:
        from confluent_kafka import KafkaException

        out = []
        messages = self.consumer.consume(num_messages=max_records, timeout=timeout_s)
        if self._callback_error is not None:
            error, self._callback_error = self._callback_error, None
            raise error
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.fatal():
                    raise KafkaException(err)
                self._kafka_error(err)  # transient (librdkafka reconnects by itself): said once per outage
                continue
            out.append(SourceRecord(msg.topic(), msg.partition(), msg.offset(), msg.value(), msg.timestamp()[1], msg.key()))
        # Back when records flow again, or when no error came for a while (an idle topic brings no records).
        if self.health is not None and (out or time.monotonic() - self._last_error_at > QUIET_OK_S):
            self.health.ok()
        return out

    def commit(self, offsets: dict[TopicPartition, int]) -> None:
        from confluent_kafka import TopicPartition as KafkaPartition

        self.consumer.commit(offsets=[KafkaPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=True)

    def unread(self, tp: TopicPartition) -> int | None:
        from confluent_kafka import TopicPartition as KafkaPartition

        partition = KafkaPartition(*tp)
        _, high = self.consumer.get_watermark_offsets(partition, cached=True)  # read_committed: the last stable offset
        position = self.consumer.position([partition])[0].offset  # moves past transaction markers
        return max(high - position, 0) if high >= 0 and position >= 0 else None

    def close(self) -> None:
        self.consumer.close()


class KafkaDeadLetters:
    """Sends rejects keyed by their source topic; a value carries the reason and the source coordinates."""

    def __init__(self, settings: Settings):
        from confluent_kafka import Producer

        self.topic = settings.sink_dead_letter_topic
        self.producer = Producer(client_config(settings, **{"enable.idempotence": True, "acks": "all", "linger.ms": 20}))

    def send(self, letters: Sequence[DeadLetter]) -> None:
        failures = []

        def delivered(err, _msg) -> None:
            if err is not None:
                failures.append(err.str())

        detected_at = now_iso()
        for letter in letters:
            value = orjson.dumps({
                "source": "clickhouse_sink",
                "topic": letter.topic,
                "partition": letter.partition,
                "offset": letter.offset,
                "table": letter.table,
                "reason": letter.reason,
                "value": None if letter.value is None else letter.value.decode("utf-8", errors="replace"),
                "detected_at": detected_at,
            })
            produce_blocking(self.producer, self.topic, value, letter.topic.encode(), on_delivery=delivered, wait_s=0.5)
        left = self.producer.flush(DELIVERY_TIMEOUT_S)
        if left or failures:
            raise PlatformError(f"could not deliver {left + len(failures)} dead letters to {self.topic}: {'; '.join(failures[:3]) or 'timed out'}")
        _LOG.warning("%d records did not fit their table; sent to %s (first: %s)", len(letters), self.topic, letters[0].reason)
