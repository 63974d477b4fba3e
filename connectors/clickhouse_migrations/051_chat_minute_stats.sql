-- Flink output `chat_minute_stats` (job chat_aggregate): per channel and 1-minute window of sent_at.
-- Same choices as the other minute aggregates (010_game_minute_stats.sql): ordered by the row's identity,
-- day partitions, 90-day TTL, insert-token deduplication for the exactly-once sink.
CREATE TABLE IF NOT EXISTS chat_minute_stats
(
    window_start DateTime64(3, 'UTC'),
    window_end DateTime64(3, 'UTC'),
    channel String,
    messages Int64,
    unique_chatters Int64,
    sentiment_avg Float64,
    negative_messages Int64,
    neutral_messages Int64,
    positive_messages Int64,
    engagement_messages Int64,
    non_engagement_messages Int64,
    question_messages Int64,
    mention_messages Int64,
    reply_messages Int64,
    emote_only_messages Int64,
    emote_only_share Float64,
    emotes Int64,
    viewers_avg Nullable(Float64),
    viewers_max Nullable(Int32),
    game_name Nullable(String),
    title Nullable(String),
    messages_per_1k_viewers Nullable(Float64),
    chatters_per_1k_viewers Nullable(Float64)
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(window_start)
ORDER BY (window_start, channel)
TTL toDateTime(window_start) + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;
