-- Flink output `chat_silver` (job chat_enrich): one row per chat message_id, contract-checked and scored.
-- Loaded by the exactly-once sink. ReplacingMergeTree ordered by (channel, sent_at, message_id): dashboards
-- read one channel over a time range, and a re-delivered message (same id, same sent_at) collapses on merge.
-- non_replicated_deduplication_window drops a retried insert with the same token (the sink's exactly-once).
-- Chat is the largest table: day partitions and a 30-day TTL drop whole parts (the lake keeps history).
CREATE TABLE IF NOT EXISTS chat_silver
(
    message_id String,
    channel String,
    channel_id String,
    chatter_id String,
    chatter_login String,
    chatter_name String,
    text String,
    badges String,
    reply_parent_message_id Nullable(String),
    mentions String,
    sent_at DateTime64(3, 'UTC'),
    data_retrieved_at DateTime64(3, 'UTC'),
    message_length Int32,
    char_entropy Float64,
    emote_count Int32,
    emote_ratio Float64,
    is_emote_only Bool,
    emote_names String,
    sentiment Float64,
    sentiment_label LowCardinality(String),
    is_question Bool,
    is_mention Bool,
    is_reply Bool,
    is_engagement Bool,
    engagement_kinds String,
    source_partition Int32,
    source_offset Int64
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(sent_at)
ORDER BY (channel, sent_at, message_id)
TTL toDateTime(sent_at) + INTERVAL 30 DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;
