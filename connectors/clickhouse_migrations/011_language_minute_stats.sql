-- Flink output `language_minute_stats`: viewers and live streams per language and 1-minute window.
-- Same layout rules as 010 (identity ORDER BY, day partitions, 90-day TTL, insert deduplication).
CREATE TABLE IF NOT EXISTS language_minute_stats
(
    window_start DateTime64(3, 'UTC'),
    window_end DateTime64(3, 'UTC'),
    language String,
    viewers_sum Int64,
    live_streams Int64
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(window_start)
ORDER BY (window_start, language)
TTL toDateTime(window_start) + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;
