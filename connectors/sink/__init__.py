"""Exactly-once Kafka → ClickHouse sink for the Flink output topics.

Flink commits its output to Kafka in transactions; this sink reads it ``read_committed`` and loads every
record into its ClickHouse table exactly once, even when killed at any moment. The recipe is the one
ClickHouse's own Kafka connectors use:

* Batches are per topic-partition and cover a contiguous offset range ``first..last``.
* Before a batch is inserted, the range is written to ClickHouse as *pending* (``sink_offsets``); after
  the insert it is written as *committed*. The state table, not Kafka's committed offsets, decides
  where a restarted sink resumes (Kafka offsets are committed too, for lag tooling only).
* A pending range found at start-up is rebuilt record for record (Kafka partitions are immutable and
  the row conversion is deterministic) and inserted again with the same
  ``insert_deduplication_token = topic:partition:first-last``, so ClickHouse drops the blocks it already
  has. Tables therefore need insert deduplication (``non_replicated_deduplication_window`` > 0 or a
  replicated engine); the sink checks this at start and refuses tables that lack it.

Records that do not fit their table go to the dead-letter topic with the reason (at least once: a
retried batch sends its rejects again; their key and source coordinates identify repeats).

Modules: :mod:`.mapping` (topic → table), :mod:`.rows` (JSON → typed columns), :mod:`.batching`,
:mod:`.loader` (the state machine), :mod:`.kafka_io` and :mod:`.clickhouse_io` (real ends),
(in-memory ends for tests: tests/support/sink_fakes.py), :mod:`.health`, :mod:`.cli`.
"""
