-- Flink output `chat_top_emotes` (job chat_aggregate): the 10 most used emotes per channel and minute.
CREATE TABLE IF NOT EXISTS chat_top_emotes
(
    window_start DateTime64(3, 'UTC'),
    window_end DateTime64(3, 'UTC'),
    channel String,
    rank_in_window Int32,
    emote String,
    uses Int64,
    chatters Int64
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(window_start)
ORDER BY (window_start, channel, rank_in_window)
TTL toDateTime(window_start) + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;
