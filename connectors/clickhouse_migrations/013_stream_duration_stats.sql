-- Flink output `stream_duration_stats`: per game and 1-minute window, live streams by how long they
-- have been live ('0-1h', '1-2h', '2-4h', '4-8h', '8h+').
CREATE TABLE IF NOT EXISTS stream_duration_stats
(
    window_start DateTime64(3, 'UTC'),
    window_end DateTime64(3, 'UTC'),
    game_id String,
    game_name Nullable(String),
    duration_bucket LowCardinality(String),
    live_streams Int64
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(window_start)
ORDER BY (window_start, game_id, duration_bucket)
TTL toDateTime(window_start) + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;
