-- The seed's game_streams_enriched, column-compatible (same names, same order, plus event_id),
-- fixed where the seed hurt its users:
--   * PARTITION BY day, not per (timestamp, game_id): the seed made one partition per poll and game,
--     i.e. thousands of tiny parts a day, which ClickHouse refuses past `max_partitions_per_insert_block`
--     and merges forever.
--   * ReplacingMergeTree ordered by the event identity: a re-delivered event collapses into one row
--     (on merge, or at once with FINAL), and `non_replicated_deduplication_window` keeps the hashes of
--     recent insert blocks so a retried insert with the same `insert_deduplication_token` is dropped
--     (the exactly-once ClickHouse sink relies on it).
--   * Timestamps are DateTime64(3, 'UTC'): millisecond precision, and no dependence on the server's zone.
--   * The 14-day TTL is kept, counted from when the row was observed (data_retrieved_at) rather than from
--     started_at: a 24/7 stream started weeks ago would otherwise have its fresh snapshots deleted on the
--     next merge. Aligned with the day partitions, whole parts are dropped (ttl_only_drop_parts).
CREATE TABLE IF NOT EXISTS game_streams_enriched
(
    stream_id String,
    user_id String,
    user_login Nullable(String),
    user_name Nullable(String),
    game_id String,
    game_name Nullable(String),
    stream_type Nullable(String),
    title Nullable(String),
    viewer_count Nullable(UInt32),
    started_at DateTime64(3, 'UTC'),
    language Nullable(String),
    is_mature Nullable(Bool),
    tags Nullable(String),
    broadcaster_type Nullable(String),
    user_description Nullable(String),
    user_created_at Nullable(DateTime64(3, 'UTC')),
    data_retrieved_at DateTime64(3, 'UTC'),
    event_id String
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(data_retrieved_at)
ORDER BY event_id
TTL toDateTime(data_retrieved_at) + INTERVAL 14 DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;
