-- Flink output `game_minute_stats`: per game and 1-minute window of data_retrieved_at.
-- Loaded by the exactly-once sink (connectors/sink). Shared choices for the minute aggregates:
--   * ORDER BY the identity (window_start, game_id): a re-delivered row collapses on merge, and the
--     dashboard's "latest window" and "time range" filters use the primary key's first column.
--   * PARTITION BY day of the window and a 90-day TTL: aggregates are small and trends need history;
--     whole day parts are dropped (ttl_only_drop_parts).
--   * non_replicated_deduplication_window: a retried insert with the same insert_deduplication_token
--     is dropped, which is what makes the sink's retries exact (count() without FINAL is exact).
CREATE TABLE IF NOT EXISTS game_minute_stats
(
    window_start DateTime64(3, 'UTC'),
    window_end DateTime64(3, 'UTC'),
    game_id String,
    game_name Nullable(String),
    viewers_sum Int64,
    viewers_avg Float64,
    viewers_max Int32,
    live_streams Int64,
    new_streams Int64
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(window_start)
ORDER BY (window_start, game_id)
TTL toDateTime(window_start) + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;
