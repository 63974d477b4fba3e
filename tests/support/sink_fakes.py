"""In-memory Kafka, ClickHouse and dead-letter topic for unit tests of the loader's crash safety.

They model exactly the properties exactly-once rests on, and nothing more:

* :class:`MemoryLog` — immutable partitions whose offsets may skip (transaction markers, aborted
  records), committed group offsets, and a high watermark;
* :class:`MemorySource` — a read_committed consumer over it with seek-on-assign and rebalances;
* :class:`MemoryClickHouse` — tables that split an insert into blocks, write them one by one (a crash
  can fall between two blocks) and drop a block whose ``token_<n>`` it has seen, like
  ``insert_deduplication_token`` with a deduplication window; plus the state and health tables.

Every operation first calls ``fault(point)``, which a test uses to crash at any point.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable, Sequence

from connectors.sink.batching import SourceRecord, TopicPartition
from connectors.sink.ports import (
    BatchReport,
    DeadLetter,
    OnAssign,
    OnRevoke,
    RangeState,
)
from connectors.sink.rows import Column
from twitch_pipeline.errors import PlatformError

Fault = Callable[[str], None]


def no_fault(point: str) -> None:
    pass


class MemoryLog:
    def __init__(self) -> None:
        self.records: dict[TopicPartition, list[SourceRecord]] = defaultdict(list)
        self.end: dict[TopicPartition, int] = defaultdict(int)
        self.committed: dict[TopicPartition, int] = {}
        self.topics: dict[str, int] = {}

    def create(self, topic: str, partitions: int) -> None:
        self.topics[topic] = partitions

    def append(self, topic: str, partition: int, value: bytes | None, skip: int = 0, timestamp_ms: int = 0,
               key: bytes | None = None) -> int:
        """Append a record after ``skip`` offsets readers never see (markers, aborted records)."""
        tp = (topic, partition)
        offset = self.end[tp] + skip
        self.records[tp].append(SourceRecord(topic, partition, offset, value, timestamp_ms, key))
        self.end[tp] = offset + 1
        return offset


class MemorySource:
    def __init__(self, log: MemoryLog, fault: Fault = no_fault, chunk: int = 7):
        self.log, self.fault, self.chunk = log, fault, chunk
        self.positions: dict[TopicPartition, int] = {}
        self._callbacks: tuple[OnAssign, OnRevoke] | None = None
        self._next_assignment: list[TopicPartition] | None = None

    def subscribe(self, topics: Sequence[str], on_assign: OnAssign, on_revoke: OnRevoke) -> None:
        self._callbacks = (on_assign, on_revoke)
        self._next_assignment = [(t, p) for t in topics for p in range(self.log.topics[t])]

    def rebalance(self, assignment: list[TopicPartition]) -> None:
        """Take effect at the next poll, as a group rebalance does."""
        self._next_assignment = list(assignment)

    def poll(self, max_records: int, timeout_s: float) -> list[SourceRecord]:
        self.fault("source.poll")
        if self._next_assignment is not None:
            self._apply_assignment(self._next_assignment)
            self._next_assignment = None
        out: list[SourceRecord] = []
        for tp, position in list(self.positions.items()):
            fresh = [r for r in self.log.records[tp] if r.offset >= position][: min(self.chunk, max_records - len(out))]
            out.extend(fresh)
            if fresh:
                self.positions[tp] = fresh[-1].offset + 1
        return out

    def _apply_assignment(self, assignment: list[TopicPartition]) -> None:
        on_assign, on_revoke = self._callbacks  # type: ignore[misc]
        if self.positions:
            on_revoke(list(self.positions))
        self.positions = {}
        for tp, position in on_assign(assignment).items():
            self.positions[tp] = position if position is not None else self.log.committed.get(tp, 0)

    def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.fault("source.commit")
        self.log.committed.update(offsets)

    def unread(self, tp: TopicPartition) -> int | None:
        position = self.positions.get(tp)
        return None if position is None else sum(1 for r in self.log.records[tp] if r.offset >= position)

    def close(self) -> None:
        pass


class MemoryClickHouse:
    """Inserter, state store and health log in one, like the real ClickHouse."""

    def __init__(self, tables: dict[str, list[Column]], block_rows: int = 3, deduplicate: bool = True, fault: Fault = no_fault):
        self.schemas = tables
        self.rows: dict[str, list[tuple]] = {t: [] for t in tables}
        self.seen_blocks: dict[str, set[str]] = {t: set() for t in tables}
        self.block_rows = block_rows
        self.deduplicate = deduplicate
        self.fault = fault
        self.states: list[RangeState] = []
        self.reports: list[BatchReport] = []

    def columns(self, table: str) -> list[Column]:
        return list(self.schemas.get(table, []))

    def check_deduplication(self, table: str) -> None:
        if not self.deduplicate:
            raise PlatformError(f"table {table} does not deduplicate retried inserts")

    def insert(self, table: str, names: Sequence[str], types: Sequence[str], columns: Sequence[Sequence], token: str) -> None:
        rows = list(zip(*columns))
        for index, start in enumerate(range(0, len(rows), self.block_rows)):
            self.fault("insert.block")
            block_id = f"{token}_{index}"
            if block_id in self.seen_blocks[table]:
                continue
            self.seen_blocks[table].add(block_id)
            self.rows[table].extend(rows[start : start + self.block_rows])

    def load(self, keys: Sequence[tuple[str, str, int]]) -> dict[tuple[str, str, int], RangeState]:
        self.fault("state.load")
        latest: dict[tuple[str, str, int], RangeState] = {}
        for s in self.states:
            key = (s.table, s.topic, s.partition)
            if key in keys and (key not in latest or s.version >= latest[key].version):
                latest[key] = s
        return latest

    def save(self, states: Sequence[RangeState]) -> None:
        self.fault("state.save")
        self.states.extend(states)

    def write(self, reports: Sequence[BatchReport]) -> None:
        self.fault("health.write")
        self.reports.extend(reports)


class MemoryDeadLetters:
    def __init__(self, fault: Fault = no_fault):
        self.fault = fault
        self.letters: list[DeadLetter] = []

    def send(self, letters: Sequence[DeadLetter]) -> None:
        self.fault("dead_letters.send")
        self.letters.extend(letters)
