-- Chat gold, part 3: the outputs of the views of chat_aggregate_windows.sql, each to Kafka (exactly once) and Iceberg.
-- Run after the driver has planned the view behind the UNNEST once (chat_aggregate.plan_once), so the two INSERTs of a
-- view share one plan: the EXPLAIN shows each aggregation once (tests/integration/test_chat_pipeline.py checks it).

INSERT INTO chat_minute_stats_topic SELECT * FROM chat_minute_stats;
INSERT INTO `${catalog}`.`${namespace}`.chat_minute_stats SELECT * FROM chat_minute_stats;

INSERT INTO chat_top_emotes_topic SELECT * FROM chat_top_emotes;
INSERT INTO `${catalog}`.`${namespace}`.chat_top_emotes SELECT * FROM chat_top_emotes;

INSERT INTO late_events_topic
SELECT message_id, channel, sent_at, CAST(CURRENT_TIMESTAMP AS TIMESTAMP_LTZ(3)), 'chat_late_for_window'
FROM chat_with_lateness
WHERE is_late;
