-- Flink output `late_events`: game_streams events behind the allowed lateness, kept so they are
-- counted, never silently dropped. Partitioned by detection day (a late event's own time can be
-- arbitrarily old, which would scatter tiny partitions); 14 days like the enriched streams.
CREATE TABLE IF NOT EXISTS late_events
(
    event_id String,
    stream_id String,
    data_retrieved_at DateTime64(3, 'UTC'),
    detected_at DateTime64(3, 'UTC'),
    reason LowCardinality(String)
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(detected_at)
ORDER BY event_id
TTL toDateTime(detected_at) + INTERVAL 14 DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;
