-- Flink output `share_minute_stats`: per 1-minute window, live streams and viewers by the value of a
-- dimension ('is_mature' → 'true'/'false'; 'broadcaster_type' → 'partner'/'affiliate'/''/'unknown').
-- Shares are computed in views (020_dashboard_views.sql), so the counts stay additive over any time range.
CREATE TABLE IF NOT EXISTS share_minute_stats
(
    window_start DateTime64(3, 'UTC'),
    window_end DateTime64(3, 'UTC'),
    dimension LowCardinality(String),
    value LowCardinality(String),
    live_streams Int64,
    viewers_sum Int64
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(window_start)
ORDER BY (window_start, dimension, value)
TTL toDateTime(window_start) + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;
