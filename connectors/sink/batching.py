"""Per topic-partition batches cut by rows and time — or, after a crash, exactly where the lost batch ended.

A batch is a run of consecutive records of one partition. Normally it closes when it holds
``max_rows`` records, when its oldest record has waited ``max_wait_s``, or when the partition has caught up
(the loader saw a poll bring nothing more for it: a Flink checkpoint's transaction arrives as one burst, and
waiting past its end only delays it). A partition whose last batch was
left *pending* (written to the state table, insert not confirmed) instead gets a forced cut: the next
batch is exactly the records up to the pending range's last offset, whatever the row and time
limits, so the retry is identical to the lost insert and ClickHouse deduplicates it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable


def insert_token(topic: str, partition: int, first: int, last: int) -> str:
    """The insert deduplication token of an offset range: identical for the original insert and every retry,
    so ClickHouse drops a block it already has."""
    return f"{topic}:{partition}:{first}-{last}"

TopicPartition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class SourceRecord:
    topic: str
    partition: int
    offset: int
    value: bytes | None
    timestamp_ms: int  # Kafka record timestamp (for the flushing delay of a batch)
    key: bytes | None = None  # only read to recognise heartbeats


@dataclass(frozen=True)
class Batch:
    topic: str
    partition: int
    records: list[SourceRecord]
    opened_at: float  # clock time the first record was buffered (batch latency starts here)

    @property
    def first(self) -> int:
        return self.records[0].offset

    @property
    def last(self) -> int:
        return self.records[-1].offset

    @property
    def token(self) -> str:
        return insert_token(self.topic, self.partition, self.first, self.last)


@dataclass
class _Buffer:
    next_offset: int | None  # records below it were loaded already (or belong to a rebuilt range)
    cut_at: int | None = None  # forced last offset of the next batch (rebuild of a pending range)
    records: list[SourceRecord] = field(default_factory=list)
    opened_at: float = 0.0


class Batcher:
    def __init__(self, max_rows: int, max_wait_s: float, clock: Callable[[], float] = time.monotonic):
        if max_rows < 1:
            raise ValueError("a batch must hold at least one row (TWITCH_PIPELINE_SINK_BATCH_ROWS >= 1)")
        self.max_rows = max_rows
        self.max_wait_s = max_wait_s
        self.clock = clock
        self._buffers: dict[TopicPartition, _Buffer] = {}
        self.skipped = 0  # records below a partition's resume offset (already loaded), dropped

    def assign(self, tp: TopicPartition, next_offset: int | None, cut_at: int | None = None) -> None:
        """Start (or restart) a partition: resume at ``next_offset``; ``cut_at`` forces the next batch's end."""
        self._buffers[tp] = _Buffer(next_offset, cut_at)

    def revoke(self, tps: Iterable[TopicPartition]) -> None:
        """Forget partitions taken away: their unflushed records were never written anywhere."""
        for tp in tps:
            self._buffers.pop(tp, None)

    def add(self, record: SourceRecord) -> None:
        buf = self._buffers.get((record.topic, record.partition))
        if buf is None:
            return  # not (or no longer) ours: a late record of a revoked partition
        if buf.next_offset is not None and record.offset < buf.next_offset:
            self.skipped += 1
            return
        if not buf.records:
            buf.opened_at = self.clock()
        buf.records.append(record)
        buf.next_offset = record.offset + 1

    def partitions(self) -> set[TopicPartition]:
        return set(self._buffers)

    def buffered(self, tp: TopicPartition) -> int:
        buf = self._buffers.get(tp)
        return 0 if buf is None else len(buf.records)

    def ready(self, flush_all: bool = False, caught_up: Iterable[TopicPartition] = ()) -> list[Batch]:
        """At most one batch per partition (a partition's state holds one in-flight range at a time).

        ``caught_up`` partitions have nothing more to read for now: their open batch closes whatever its size and age.
        """
        now = self.clock()
        done = set(caught_up)
        out = []
        for (topic, partition), buf in self._buffers.items():
            size = self._ready_size(buf, now, flush_all or (topic, partition) in done)
            if size:
                batch, buf.records = buf.records[:size], buf.records[size:]
                out.append(Batch(topic, partition, batch, buf.opened_at))
                buf.opened_at = now
                if buf.cut_at is not None and batch[-1].offset >= buf.cut_at:
                    buf.cut_at = None
        return out

    def _ready_size(self, buf: _Buffer, now: float, flush_all: bool) -> int:
        if not buf.records:
            return 0
        if buf.cut_at is not None:  # a rebuild: only the complete range, never more or less
            if buf.records[-1].offset < buf.cut_at:
                return 0
            return sum(1 for r in buf.records if r.offset <= buf.cut_at)
        if len(buf.records) >= self.max_rows:
            return self.max_rows
        if flush_all or now - buf.opened_at >= self.max_wait_s:
            return len(buf.records)
        return 0
