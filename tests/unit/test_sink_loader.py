"""The loader's exactly-once protocol with in-memory Kafka and ClickHouse, crashed at every point."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from connectors.sink.loader import Loader
from connectors.sink.mapping import TableMapping
from connectors.sink.ports import COMMITTED, PENDING
from connectors.sink.rows import Column
from tests.support.sink_fakes import (
    MemoryClickHouse,
    MemoryDeadLetters,
    MemoryLog,
    MemorySource,
    no_fault,
)
from twitch_pipeline.errors import PlatformError

TOPIC, TABLE = "out", "out_table"
MAPPING = TableMapping(TOPIC, TABLE, "at")
SCHEMA = [Column("id", "String"), Column("n", "Int32"), Column("at", "DateTime64(3, 'UTC')")]
CRASH_POINTS = ("source.poll", "state.load", "state.save", "insert.block", "dead_letters.send", "health.write", "source.commit")


class Crash(Exception):
    """kill -9: the loader is abandoned mid-call, nothing is closed or flushed."""


def crash_at(point: str, nth: int):
    calls = Counter()

    def fault(at: str) -> None:
        calls[at] += 1
        if at == point and calls[at] == nth:
            raise Crash(f"{point} #{nth}")

    return fault


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fill(log: MemoryLog, count: int, partitions: int = 2, bad_every: int = 0, seed: int = 7) -> tuple[Counter, int]:
    """Records spread over partitions, with offset gaps (transaction markers) and some misfits.
    Returns the rows that must end up in the table (each exactly once) and the number of misfits."""
    rng = random.Random(seed)
    log.create(TOPIC, partitions)
    expected, bad = Counter(), 0
    for i in range(count):
        if bad_every and i % bad_every == bad_every - 1:
            value, bad = json.dumps({"id": f"e{i}", "n": "not a number", "at": "2026-11-21T11:05:00.000Z"}).encode(), bad + 1
        else:
            value = json.dumps({"id": f"e{i}", "n": i, "at": "2026-11-21T11:05:00.000Z"}).encode()
            expected[(f"e{i}", i, 1795259100000)] += 1
        log.append(TOPIC, i % partitions, value, skip=rng.choice((0, 0, 1, 2)), timestamp_ms=1795259100000)
    return expected, bad


def make_loader(log, ch, letters, fault=no_fault, batch_rows=10, clock=None, source=None) -> Loader:
    ch.fault = letters.fault = fault
    return Loader(
        source or MemorySource(log, fault),
        ch,
        ch,
        letters,
        ch,
        [MAPPING],
        batch_rows=batch_rows,
        batch_max_wait_s=5.0,
        clock=clock or Clock(),
        wall=lambda: 1795259160.0,
    )


def drain(loader: Loader, started: bool = False) -> None:
    """Run until the log is consumed, then flush what is buffered (as a clean stop does)."""
    if not started:
        loader.start()
    idle = 0
    while idle < 2:
        idle = idle + 1 if loader.step() == 0 else 0
    loader.flush(loader.batcher.ready(flush_all=True))


def run_with_crashes(log, ch, letters, faults) -> int:
    """A new loader after each crash (same Kafka, same ClickHouse), until one finishes; returns crashes.

    Each run batches differently (as time-based cuts do in real life), so only the rebuild of the
    pending range can make a retry identical to the insert it repeats."""
    crashes = 0
    for attempt, fault in enumerate([*faults, no_fault]):
        try:
            source = MemorySource(log, fault, chunk=3 + attempt % 5)
            drain(make_loader(log, ch, letters, fault, batch_rows=(10, 7, 13)[attempt % 3], source=source))
            return crashes
        except Crash:
            crashes += 1
    raise AssertionError("unreachable")


def assert_exactly_once(log: MemoryLog, ch: MemoryClickHouse, expected: Counter) -> None:
    assert Counter(ch.rows[TABLE]) == expected  # no row lost, none twice: count() without FINAL is exact
    for partition in range(log.topics[TOPIC]):
        tp = (TOPIC, partition)
        committed = sorted({(s.first_offset, s.last_offset) for s in ch.states if s.status == COMMITTED and s.partition == partition})
        covered = [o for first, last in committed for o in range(first, last + 1)]
        assert len(covered) == len(set(covered)), f"overlapping committed ranges on {tp}"
        offsets = [r.offset for r in log.records[tp]]
        assert set(offsets) <= set(covered), f"offsets of {tp} missing from every committed range"
        assert committed[-1][1] == offsets[-1]
        assert log.committed[tp] == offsets[-1] + 1


def fresh():
    return MemoryLog(), MemoryClickHouse({TABLE: SCHEMA}), MemoryDeadLetters()


def test_loads_every_row_once_and_routes_misfits_to_dead_letters():
    log, ch, letters = fresh()
    expected, bad = fill(log, 95, bad_every=10)
    drain(make_loader(log, ch, letters))
    assert_exactly_once(log, ch, expected)
    assert len(letters.letters) == bad
    assert all("column n (Int32): expected an integer" in d.reason for d in letters.letters)
    assert {(d.topic, d.table) for d in letters.letters} == {(TOPIC, TABLE)}


@pytest.mark.parametrize("point", CRASH_POINTS)
@pytest.mark.parametrize("nth", [1, 2, 3, 5, 8])
def test_a_crash_at_any_point_neither_loses_nor_duplicates(point, nth):
    log, ch, letters = fresh()
    expected, bad = fill(log, 60, bad_every=7)
    run_with_crashes(log, ch, letters, [crash_at(point, nth)])
    assert_exactly_once(log, ch, expected)
    assert {d.offset for d in letters.letters} == {r.offset for rs in log.records.values() for r in rs if b"not a number" in r.value}


def test_crash_before_insert_rebuilds_the_pending_range():
    log, ch, letters = fresh()
    expected, _ = fill(log, 40)
    with pytest.raises(Crash):
        drain(make_loader(log, ch, letters, crash_at("insert.block", 1)))
    assert ch.rows[TABLE] == [] and ch.states[-1].status == PENDING
    pending = {(s.partition, s.first_offset, s.last_offset) for s in ch.states}
    drain(make_loader(log, ch, letters, batch_rows=4))  # smaller batches now, yet the retry is the same range
    first_committed = {(s.partition, s.first_offset, s.last_offset) for s in ch.states if s.status == COMMITTED}
    assert pending <= first_committed  # the retry covered exactly the pending ranges
    assert_exactly_once(log, ch, expected)


def test_crash_mid_insert_leaves_half_a_batch_that_the_retry_completes_without_duplicates():
    log, ch, letters = fresh()
    expected, _ = fill(log, 40)
    with pytest.raises(Crash):
        drain(make_loader(log, ch, letters, crash_at("insert.block", 3)))
    assert 0 < len(ch.rows[TABLE]) < 10  # two blocks of the first batch landed
    drain(make_loader(log, ch, letters, batch_rows=6))
    assert_exactly_once(log, ch, expected)


def test_crash_between_insert_and_state_commit_is_deduplicated_by_the_token():
    log, ch, letters = fresh()
    expected, _ = fill(log, 40)
    with pytest.raises(Crash):
        drain(make_loader(log, ch, letters, crash_at("health.write", 1)))
    landed = len(ch.rows[TABLE])
    assert landed > 0 and ch.states[-1].status == PENDING
    blocks_before = {t: set(b) for t, b in ch.seen_blocks.items()}
    drain(make_loader(log, ch, letters, batch_rows=25))
    assert blocks_before[TABLE] <= ch.seen_blocks[TABLE]
    assert_exactly_once(log, ch, expected)


def test_crash_after_state_commit_before_kafka_commit_resumes_from_the_state():
    log, ch, letters = fresh()
    expected, _ = fill(log, 40)
    with pytest.raises(Crash):
        drain(make_loader(log, ch, letters, crash_at("source.commit", 1)))
    assert log.committed == {}  # Kafka knows nothing; the state table knows the batch is in
    inserts_before = len(ch.rows[TABLE])
    drain(make_loader(log, ch, letters))
    assert len(ch.rows[TABLE]) == len(expected) and inserts_before > 0
    assert_exactly_once(log, ch, expected)


def test_restart_with_partitions_committed_pending_and_unseen():
    log, ch, letters = fresh()
    expected, _ = fill(log, 90, partitions=3)
    with pytest.raises(Crash):
        drain(make_loader(log, ch, letters, crash_at("insert.block", 9)))
    latest = ch.load([(TABLE, TOPIC, p) for p in range(3)])
    assert {k[2]: s.status for k, s in latest.items()} == {0: COMMITTED, 1: PENDING}  # partition 2: no state yet
    drain(make_loader(log, ch, letters))
    assert_exactly_once(log, ch, expected)


def test_restart_of_a_partition_never_seen_uses_the_kafka_committed_offset():
    log, ch, letters = fresh()
    expected, _ = fill(log, 30, partitions=1)
    drain(make_loader(log, ch, letters))
    ch.states.clear()  # e.g. the state table was recreated: fall back to Kafka's committed offsets
    drain(make_loader(log, ch, letters))
    assert Counter(ch.rows[TABLE]) == expected


def test_many_random_crashes_in_a_row():
    rng = random.Random(42)
    log, ch, letters = fresh()
    expected, _ = fill(log, 300, partitions=3, bad_every=13)

    def chaos(point: str) -> None:
        if rng.random() < 0.04:
            raise Crash(point)

    crashes = run_with_crashes(log, ch, letters, [chaos] * 40)
    assert crashes >= 5
    assert_exactly_once(log, ch, expected)


def test_rebalance_hands_partitions_over_without_loss_or_duplicates():
    log, ch, letters = fresh()
    expected, _ = fill(log, 120, partitions=2)
    clock = Clock()
    first_source = MemorySource(log)
    first = make_loader(log, ch, letters, clock=clock, source=first_source)
    first.start()
    for _ in range(3):
        first.step()  # partition 1 has records buffered but not flushed
    first_source.rebalance([(TOPIC, 0)])
    second_source = MemorySource(log)
    second = make_loader(log, ch, letters, clock=clock, source=second_source)
    second.start()
    second_source.rebalance([(TOPIC, 1)])
    drain(first, started=True)
    drain(second, started=True)
    assert_exactly_once(log, ch, expected)


def test_rebalance_onto_a_pending_range_left_by_a_crashed_owner():
    log, ch, letters = fresh()
    expected, _ = fill(log, 60, partitions=2)
    with pytest.raises(Crash):
        drain(make_loader(log, ch, letters, crash_at("health.write", 2)))
    owners = []
    for partition in (0, 1):
        source = MemorySource(log)
        loader = make_loader(log, ch, letters, source=source)
        loader.start()
        source.rebalance([(TOPIC, partition)])
        owners.append(loader)
    for loader in owners:
        drain(loader, started=True)
    assert_exactly_once(log, ch, expected)


def test_heartbeats_are_skipped_but_their_offsets_committed():
    log, ch, letters = fresh()
    expected, _ = fill(log, 20)
    for partition in range(2):
        log.append(TOPIC, partition, b'{"id": null, "at": "2026-11-21T11:06:00.000Z"}', key=b"__heartbeat__%d" % partition)
    drain(make_loader(log, ch, letters))
    assert_exactly_once(log, ch, expected)
    assert letters.letters == []


def test_batches_close_on_rows_or_once_the_partition_caught_up():
    log, ch, letters = fresh()
    fill(log, 25, partitions=1)
    loader = make_loader(log, ch, letters, batch_rows=10)
    loader.start()
    for _ in range(4):  # 7 + 7 + 7 + 4 records
        loader.step()
    assert [len(range(s.first_offset, s.last_offset + 1)) >= 10 for s in ch.states if s.status == COMMITTED] == [True, True]
    assert len(ch.rows[TABLE]) == 20  # the last 5 are still arriving
    loader.step()  # a poll with nothing more for the partition: it caught up, the rest goes without waiting
    assert len(ch.rows[TABLE]) == 25


def test_a_partition_that_keeps_receiving_closes_its_batch_on_time():
    log, ch, letters = fresh()
    fill(log, 1, partitions=1)
    clock = Clock()
    loader = make_loader(log, ch, letters, batch_rows=100, clock=clock)
    loader.start()
    for i in range(5):  # a record arrives before every poll, for 5 s: never caught up, below the row limit
        loader.step()
        clock.now += 1.0
        log.append(TOPIC, 0, json.dumps({"id": f"more{i}", "n": i, "at": "2026-11-21T11:05:00.000Z"}).encode())
    assert ch.rows[TABLE] == []
    loader.step()  # the first record has waited 5 s (batch_max_wait_s)
    assert len(ch.rows[TABLE]) == 6


def test_health_reports_lag_freshness_and_latency():
    log, ch, letters = fresh()
    fill(log, 20, partitions=1)
    drain(make_loader(log, ch, letters, batch_rows=10))
    first, last = ch.reports[0], ch.reports[-1]
    assert first.rows == 10 and first.lag == 10  # read and buffered, or not read yet
    assert last.lag == 0
    assert first.freshness_s == pytest.approx(60.0)  # event time 11:05:00, visible at 11:06:00
    assert first.kafka_delay_ms == pytest.approx(60_000)


def test_a_table_that_does_not_deduplicate_retries_is_refused():
    log, ch, letters = fresh()
    fill(log, 1, partitions=1)
    ch.deduplicate = False
    with pytest.raises(PlatformError, match="does not deduplicate"):
        make_loader(log, ch, letters).start()


def test_a_pending_range_partly_deleted_by_retention_keeps_its_token_and_range(caplog):
    log, ch, letters = fresh()
    expected, _ = fill(log, 40, partitions=1)
    with pytest.raises(Crash):
        drain(make_loader(log, ch, letters, crash_at("insert.block", 1)))
    pending = ch.states[-1]
    gone = {r for r in log.records[(TOPIC, 0)] if r.offset < pending.first_offset + 3}
    log.records[(TOPIC, 0)] = [r for r in log.records[(TOPIC, 0)] if r not in gone]
    drain(make_loader(log, ch, letters))
    assert "may be duplicated" in caplog.text
    assert any(s.status == COMMITTED and (s.first_offset, s.last_offset) == (pending.first_offset, pending.last_offset) for s in ch.states)
    assert Counter(ch.rows[TABLE]) == expected - Counter(json_row(r.value) for r in gone)


def json_row(value: bytes) -> tuple:
    record = json.loads(value)
    return (record["id"], record["n"], 1795259100000)


def test_partitions_of_unmapped_topics_are_ignored():
    log, ch, letters = fresh()
    expected, _ = fill(log, 20, partitions=1)
    log.create("elsewhere", 1)
    log.append("elsewhere", 0, b"{}")
    source = MemorySource(log)
    loader = make_loader(log, ch, letters, source=source)
    loader.start()
    source.rebalance([(TOPIC, 0), ("elsewhere", 0)])  # e.g. a static member's assignment from an older subscription
    drain(loader, started=True)
    assert Counter(ch.rows[TABLE]) == expected and not letters.letters
