-- Flink output `top_streams`: the 10 streams with the most viewers in each 1-minute window.
-- Identity is the rank within the window; 30 days of history (10 rows a minute).
CREATE TABLE IF NOT EXISTS top_streams
(
    window_start DateTime64(3, 'UTC'),
    window_end DateTime64(3, 'UTC'),
    rank_in_window Int32,
    stream_id String,
    user_login Nullable(String),
    user_name Nullable(String),
    game_id Nullable(String),
    game_name Nullable(String),
    title Nullable(String),
    language Nullable(String),
    viewer_count Int32
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(window_start)
ORDER BY (window_start, rank_in_window)
TTL toDateTime(window_start) + INTERVAL 30 DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;
