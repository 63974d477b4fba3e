"""The exactly-once loop: poll, batch per partition, and commit each batch in a crash-safe order.

For the batches flushed together (at most one per partition):

1. save every range as *pending*                  — a crash from here on rebuilds exactly these ranges
2. insert each batch with its deduplication token — a retry of a landed block is dropped by ClickHouse
3. send the rejected records to the dead-letter topic (at least once)
4. write the batches' health rows
5. save every range as *committed*                — from here on the ranges are never read again
6. commit the next offsets to Kafka                — advisory only

On (re)assignment a partition resumes after its committed range, or re-reads its pending range and
cuts the next batch exactly at that range's end (see :mod:`.batching`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from connectors.sink.batching import Batch, Batcher, TopicPartition, insert_token
from connectors.sink.mapping import TableMapping
from connectors.sink.ports import (
    COMMITTED,
    PENDING,
    BatchReport,
    DeadLetter,
    DeadLetters,
    HealthLog,
    Inserter,
    RangeState,
    Source,
    StateStore,
)
from connectors.sink.rows import Rejected, RowConverter
from connectors.topics import is_heartbeat_key

_LOG = logging.getLogger("twitch_pipeline.sink")
POLL_MAX_RECORDS = 10_000


@dataclass
class _Prepared:
    batch: Batch
    mapping: TableMapping
    first: int  # the range recorded in the state table (a rebuilt batch keeps its pending range)
    last: int
    rows: list[tuple]
    rejected: list[DeadLetter]
    insert_ms: float = 0.0

    @property
    def token(self) -> str:
        return insert_token(self.batch.topic, self.batch.partition, self.first, self.last)


@dataclass
class Totals:
    rows: int = 0
    dead_letters: int = 0
    batches: int = 0


class Loader:
    def __init__(
        self,
        source: Source,
        inserter: Inserter,
        state: StateStore,
        dead_letters: DeadLetters,
        health: HealthLog,
        mappings: Sequence[TableMapping],
        batch_rows: int,
        batch_max_wait_s: float,
        poll_timeout_s: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ):
        self.source, self.inserter, self.state = source, inserter, state
        self.dead_letters, self.health = dead_letters, health
        self.mappings = {m.topic: m for m in mappings}
        self.batcher = Batcher(batch_rows, batch_max_wait_s, clock)
        self.poll_timeout_s = poll_timeout_s
        self.poll_max = min(batch_rows, POLL_MAX_RECORDS)
        self.clock, self.wall = clock, wall
        self.converters: dict[str, RowConverter] = {}
        self.pending: dict[TopicPartition, RangeState] = {}  # ranges being rebuilt after a crash
        self.resync: dict[TopicPartition, int] = {}  # Kafka offsets to catch up with the state table
        self.totals = Totals()

    def start(self) -> None:
        """Read each table's columns, check it deduplicates retries, and subscribe."""
        for m in self.mappings.values():
            self.inserter.check_deduplication(m.table)
            self.converters[m.topic] = RowConverter(m.table, self.inserter.columns(m.table), m.event_time)
        self.source.subscribe(list(self.mappings), self._on_assign, self._on_revoke)

    def run(self, stop: threading.Event, log_every_s: float = 30.0) -> None:
        """Loop until ``stop`` is set (call :meth:`start` first); closes the source either way."""
        try:
            logged, logged_rows = self.clock(), 0
            while not stop.is_set():
                self.step()
                if self.clock() - logged >= log_every_s:
                    rate = (self.totals.rows - logged_rows) / (self.clock() - logged)
                    _LOG.info("loaded %d rows in %d batches (%.0f rows/s now), %d dead letters", self.totals.rows, self.totals.batches, rate, self.totals.dead_letters)
                    logged, logged_rows = self.clock(), self.totals.rows
            self.flush(self.batcher.ready(flush_all=True))  # a clean stop leaves nothing buffered
        finally:
            self.source.close()

    def step(self) -> int:
        """One poll and the flush of whatever batches are due; returns the number of records polled."""
        records = self.source.poll(self.poll_max, self.poll_timeout_s)
        for record in records:
            self.batcher.add(record)
        if self.resync:  # a crash may have come between the state commit and the Kafka commit
            self.source.commit(self.resync)
            self.resync = {}
        # A poll that came back short drained the consumer: a partition it brought nothing for has caught up, and
        # its batch goes now instead of at the wait limit (a Flink checkpoint's output arrives as one burst; waiting
        # for more only delays it). A full poll means a backlog, where batches grow to their row and time limits.
        caught_up = () if len(records) >= self.poll_max else self.batcher.partitions() - {(r.topic, r.partition) for r in records}
        self.flush(self.batcher.ready(caught_up=caught_up))
        return len(records)

    # -- assignment -------------------------------------------------------------------------------
    def _key(self, tp: TopicPartition) -> tuple[str, str, int]:
        return (self.mappings[tp[0]].table, tp[0], tp[1])

    def _on_assign(self, tps: list[TopicPartition]) -> dict[TopicPartition, int | None]:
        stray = [tp for tp in tps if tp[0] not in self.mappings]
        if stray:  # e.g. a static member's assignment from before its subscription changed
            _LOG.warning("ignoring assigned partitions of unmapped topics: %s", stray)
            tps = [tp for tp in tps if tp[0] in self.mappings]
        states = self.state.load([self._key(tp) for tp in tps])
        positions: dict[TopicPartition, int | None] = {}
        for tp in tps:
            found = states.get(self._key(tp))
            if found is None:
                self.batcher.assign(tp, None)
                positions[tp] = None
            elif found.status == COMMITTED:
                self.batcher.assign(tp, found.last_offset + 1)
                positions[tp] = self.resync[tp] = found.last_offset + 1
            else:
                _LOG.info("rebuilding pending range %s of %s", found.token, found.table)
                self.batcher.assign(tp, found.first_offset, cut_at=found.last_offset)
                self.pending[tp] = found
                positions[tp] = found.first_offset
        return positions

    def _on_revoke(self, tps: list[TopicPartition]) -> None:
        self.batcher.revoke(tps)
        for tp in tps:
            self.pending.pop(tp, None)
            self.resync.pop(tp, None)

    # -- the commit protocol ----------------------------------------------------------------------
    def flush(self, batches: list[Batch]) -> None:
        if not batches:
            return
        prepared = [self._prepare(b) for b in batches]
        self.state.save([self._range(p, PENDING) for p in prepared])
        for p in prepared:
            if p.rows:
                began = self.clock()
                conv = self.converters[p.batch.topic]
                self.inserter.insert(p.mapping.table, conv.column_names, conv.column_types, list(zip(*p.rows)), p.token)
                p.insert_ms = (self.clock() - began) * 1000
        rejected = [letter for p in prepared for letter in p.rejected]
        if rejected:
            self.dead_letters.send(rejected)
        visible_at, done = self.wall(), self.clock()
        self.health.write([self._report(p, visible_at, done) for p in prepared])
        self.state.save([self._range(p, COMMITTED) for p in prepared])
        self.source.commit({(p.batch.topic, p.batch.partition): p.batch.last + 1 for p in prepared})
        for p in prepared:
            self.pending.pop((p.batch.topic, p.batch.partition), None)
            self.totals.rows += len(p.rows)
            self.totals.dead_letters += len(p.rejected)
            self.totals.batches += 1

    def _prepare(self, batch: Batch) -> _Prepared:
        mapping = self.mappings[batch.topic]
        conv = self.converters[batch.topic]
        rows, rejected = [], []
        for record in batch.records:
            if is_heartbeat_key(record.key):
                continue  # event time only (relayed by a Flink job); its offset is covered by the batch range
            try:
                rows.append(conv.convert(record.value))
            except Rejected as why:
                rejected.append(DeadLetter(record.topic, record.partition, record.offset, mapping.table, str(why), record.value))
        first, last = batch.first, batch.last
        pending = self.pending.get((batch.topic, batch.partition))
        if pending is not None:
            if (first, last) != (pending.first_offset, pending.last_offset):
                # Records of the range were deleted (retention) while the sink was down: the retry cannot
                # be identical. Reusing the pending token still drops the blocks that did land.
                _LOG.warning("pending range %s came back as %s: its rows may be duplicated", pending.token, batch.token)
            first, last = pending.first_offset, pending.last_offset
        return _Prepared(batch, mapping, first, last, rows, rejected)

    @staticmethod
    def _range(p: _Prepared, status: str) -> RangeState:
        return RangeState(p.mapping.table, p.batch.topic, p.batch.partition, p.first, p.last, status)

    def _report(self, p: _Prepared, visible_at: float, done: float) -> BatchReport:
        b = p.batch
        conv = self.converters[b.topic]
        newest = None
        if p.rows and conv.event_time_index is not None:
            ticks = [row[conv.event_time_index] for row in p.rows if row[conv.event_time_index] is not None]
            newest = max(ticks) / conv.event_ticks_per_second if ticks else None
        unread = self.source.unread((b.topic, b.partition))
        return BatchReport(
            table=p.mapping.table,
            topic=b.topic,
            partition=b.partition,
            first_offset=b.first,
            last_offset=b.last,
            rows=len(p.rows),
            dead_letters=len(p.rejected),
            committed_at=visible_at,
            batch_latency_ms=(done - b.opened_at) * 1000,
            insert_ms=p.insert_ms,
            lag=unread + self.batcher.buffered((b.topic, b.partition)) if unread is not None else -1,
            max_event_time=newest,
            freshness_s=visible_at - newest if newest is not None else None,
            kafka_delay_ms=max(visible_at * 1000 - min(r.timestamp_ms for r in b.records), 0.0),
        )
