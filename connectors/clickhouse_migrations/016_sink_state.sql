-- State and health of the exactly-once ClickHouse sink (connectors/sink).
--
-- sink_offsets: per target table and topic-partition, the offset range last written as 'pending'
-- (before its insert) or 'committed' (after). The row with the highest version is the state; version
-- grows with the offsets (2 × last_offset, +1 once committed), so no clock is trusted. No TTL: the
-- state of an idle partition must survive any pause.
CREATE TABLE IF NOT EXISTS sink_offsets
(
    target_table LowCardinality(String),
    topic LowCardinality(String),
    kafka_partition UInt32,
    first_offset UInt64,
    last_offset UInt64,
    status Enum8('pending' = 1, 'committed' = 2),
    version UInt64,
    updated_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (target_table, topic, kafka_partition);

-- sink_batches: one row per committed batch — rows, dead letters, batch latency (first record
-- buffered → committed), insert time, consumer lag, and freshness (newest event time → visible).
-- Keyed by the batch's range, so a batch retried after a crash does not count twice once merged.
CREATE TABLE IF NOT EXISTS sink_batches
(
    committed_at DateTime64(3, 'UTC'),
    target_table LowCardinality(String),
    topic LowCardinality(String),
    kafka_partition UInt32,
    first_offset UInt64,
    last_offset UInt64,
    rows UInt32,
    dead_letters UInt32,
    batch_latency_ms Float64,
    insert_ms Float64,
    lag Int64,
    max_event_time Nullable(DateTime64(3, 'UTC')),
    freshness_s Nullable(Float64),
    kafka_delay_ms Float64
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(committed_at)
ORDER BY (target_table, topic, kafka_partition, first_offset)
TTL toDateTime(committed_at) + INTERVAL 14 DAY
SETTINGS ttl_only_drop_parts = 1;
