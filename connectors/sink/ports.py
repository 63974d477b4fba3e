"""The sink's four ends, as small interfaces: real ones in :mod:`.kafka_io` / :mod:`.clickhouse_io`,
in-memory ones in tests/support/sink_fakes.py. The loader sees only these, so every crash point can be tested fast."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

from connectors.sink.batching import SourceRecord, TopicPartition, insert_token
from connectors.sink.rows import Column

PENDING, COMMITTED = "pending", "committed"

#: Called with newly assigned partitions; returns where each must resume (None: the consumer's own default).
OnAssign = Callable[[list[TopicPartition]], dict[TopicPartition, int | None]]
OnRevoke = Callable[[list[TopicPartition]], None]


@dataclass(frozen=True)
class RangeState:
    """What the sink last did with a topic-partition for a table: a range pending or committed."""

    table: str
    topic: str
    partition: int
    first_offset: int
    last_offset: int
    status: str

    @property
    def version(self) -> int:
        """Grows with every write of a partition's state (offsets only grow), so the latest row wins
        without trusting any clock: a range is pending before it is committed, and the next range
        starts after it."""
        return self.last_offset * 2 + (self.status == COMMITTED)

    @property
    def token(self) -> str:
        return insert_token(self.topic, self.partition, self.first_offset, self.last_offset)


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    table: str
    reason: str
    value: bytes | None


@dataclass(frozen=True)
class BatchReport:
    """Health of one committed batch (one row of ``sink_batches``)."""

    table: str
    topic: str
    partition: int
    first_offset: int
    last_offset: int
    rows: int
    dead_letters: int
    committed_at: float  # wall clock, seconds
    batch_latency_ms: float  # first record buffered → committed
    insert_ms: float
    lag: int  # records of the partition not loaded yet after this batch (-1: unknown)
    max_event_time: float | None  # newest event time in the batch, seconds
    freshness_s: float | None  # visible in ClickHouse − newest event time
    kafka_delay_ms: float  # visible in ClickHouse − oldest Kafka record timestamp of the batch


class Source(Protocol):
    def subscribe(self, topics: Sequence[str], on_assign: OnAssign, on_revoke: OnRevoke) -> None: ...

    def poll(self, max_records: int, timeout_s: float) -> list[SourceRecord]: ...

    def commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Advisory (lag tooling): the state table, not this, decides where a restart resumes."""

    def unread(self, tp: TopicPartition) -> int | None:
        """Offsets between the consumer's position and the partition's end (None: unknown yet)."""

    def close(self) -> None: ...


class Inserter(Protocol):
    def columns(self, table: str) -> list[Column]: ...

    def check_deduplication(self, table: str) -> None:
        """Raise PlatformError if retried inserts into ``table`` would not be deduplicated."""

    def insert(self, table: str, names: Sequence[str], types: Sequence[str], columns: Sequence[Sequence], token: str) -> None: ...


class StateStore(Protocol):
    def load(self, keys: Sequence[tuple[str, str, int]]) -> dict[tuple[str, str, int], RangeState]:
        """Latest state per (table, topic, partition); missing keys have none."""

    def save(self, states: Sequence[RangeState]) -> None: ...


class HealthLog(Protocol):
    def write(self, reports: Sequence[BatchReport]) -> None: ...


class DeadLetters(Protocol):
    def send(self, letters: Sequence[DeadLetter]) -> None:
        """Return once every letter is durably in Kafka; raise otherwise."""
