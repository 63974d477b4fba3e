-- Aggregation job, part 1: the enriched source and every output table.
--
-- The Iceberg gold tables are the one place the output columns are declared; each Kafka output topic is
-- declared LIKE its gold table, so the lake and the topics cannot drift apart. The driver partitions the
-- gold tables by day(window_start) after this script (Flink DDL has no partition transforms).

-- ------------------------------------------------------------------------------------------- source
-- Written exactly-once by enrich_streams: only committed transactions are read. Event time is the poll time.
-- A watermark after every event (not every 200 ms) makes the late/on-time split below depend only on
-- the order of the input, so replaying a partition classifies the very same rows as late.
CREATE TEMPORARY TABLE game_streams_enriched_source (
  event_id STRING, stream_id STRING, user_id STRING, user_login STRING, user_name STRING,
  game_id STRING, game_name STRING, stream_type STRING, title STRING, viewer_count INT,
  started_at TIMESTAMP_LTZ(3), `language` STRING, is_mature BOOLEAN, tags STRING,
  broadcaster_type STRING, user_description STRING, user_created_at TIMESTAMP_LTZ(3),
  data_retrieved_at TIMESTAMP_LTZ(3),
  WATERMARK FOR data_retrieved_at AS data_retrieved_at - ${lateness}
) WITH (
  'connector' = 'kafka',
  'topic' = 'game_streams_enriched',
  'properties.bootstrap.servers' = '${bootstrap}',
  'properties.group.id' = '${group_id}',
  'properties.isolation.level' = 'read_committed',
  'properties.auto.offset.reset' = 'earliest',
  'scan.startup.mode' = '${startup_mode}',
  'scan.bounded.mode' = '${bounded_mode}',
  'scan.watermark.emit.strategy' = 'on-event',
  'format' = 'json',
  'json.timestamp-format.standard' = 'ISO-8601'
);

-- ------------------------------------------------------------------------------------------- gold tables
CREATE TABLE IF NOT EXISTS `${catalog}`.`${namespace}`.game_minute_stats (
  window_start TIMESTAMP_LTZ(6), window_end TIMESTAMP_LTZ(6), game_id STRING, game_name STRING,
  viewers_sum BIGINT, viewers_avg DOUBLE, viewers_max INT, live_streams BIGINT, new_streams BIGINT
) WITH ('format-version' = '2');

CREATE TABLE IF NOT EXISTS `${catalog}`.`${namespace}`.language_minute_stats (
  window_start TIMESTAMP_LTZ(6), window_end TIMESTAMP_LTZ(6), `language` STRING,
  viewers_sum BIGINT, live_streams BIGINT
) WITH ('format-version' = '2');

CREATE TABLE IF NOT EXISTS `${catalog}`.`${namespace}`.share_minute_stats (
  window_start TIMESTAMP_LTZ(6), window_end TIMESTAMP_LTZ(6), dimension STRING, `value` STRING,
  live_streams BIGINT, viewers_sum BIGINT
) WITH ('format-version' = '2');

CREATE TABLE IF NOT EXISTS `${catalog}`.`${namespace}`.stream_duration_stats (
  window_start TIMESTAMP_LTZ(6), window_end TIMESTAMP_LTZ(6), game_id STRING, game_name STRING,
  duration_bucket STRING, live_streams BIGINT
) WITH ('format-version' = '2');

CREATE TABLE IF NOT EXISTS `${catalog}`.`${namespace}`.top_streams (
  window_start TIMESTAMP_LTZ(6), window_end TIMESTAMP_LTZ(6), rank_in_window INT,
  stream_id STRING, user_login STRING, user_name STRING, game_id STRING, game_name STRING,
  title STRING, `language` STRING, viewer_count INT
) WITH ('format-version' = '2');

-- ------------------------------------------------------------------------------------------- output topics
-- Exactly-once: one transaction per checkpoint, each sink with its own transactional-id prefix (sinks
-- sharing a prefix would fence each other). The broker caps transaction timeouts at 15 min by default.
CREATE TEMPORARY TABLE game_minute_stats_topic WITH (
  'connector' = 'kafka',
  'topic' = 'game_minute_stats',
  'sink.transactional-id-prefix' = '${txn_prefix}-game-minute',
  'key.format' = 'raw',
  'key.fields' = 'game_id',
  ${exactly_once_json_sink}
) LIKE `${catalog}`.`${namespace}`.game_minute_stats (EXCLUDING ALL);

CREATE TEMPORARY TABLE language_minute_stats_topic WITH (
  'connector' = 'kafka',
  'topic' = 'language_minute_stats',
  'sink.transactional-id-prefix' = '${txn_prefix}-language-minute',
  'key.format' = 'raw',
  'key.fields' = 'language',
  ${exactly_once_json_sink}
) LIKE `${catalog}`.`${namespace}`.language_minute_stats (EXCLUDING ALL);

CREATE TEMPORARY TABLE share_minute_stats_topic WITH (
  'connector' = 'kafka',
  'topic' = 'share_minute_stats',
  'sink.transactional-id-prefix' = '${txn_prefix}-share-minute',
  'key.format' = 'raw',
  'key.fields' = 'dimension',
  ${exactly_once_json_sink}
) LIKE `${catalog}`.`${namespace}`.share_minute_stats (EXCLUDING ALL);

CREATE TEMPORARY TABLE stream_duration_stats_topic WITH (
  'connector' = 'kafka',
  'topic' = 'stream_duration_stats',
  'sink.transactional-id-prefix' = '${txn_prefix}-duration',
  'key.format' = 'raw',
  'key.fields' = 'game_id',
  ${exactly_once_json_sink}
) LIKE `${catalog}`.`${namespace}`.stream_duration_stats (EXCLUDING ALL);

-- Keyed by window: the ten rows of one window land on one partition, in rank order.
CREATE TEMPORARY TABLE top_streams_topic WITH (
  'connector' = 'kafka',
  'topic' = 'top_streams',
  'sink.transactional-id-prefix' = '${txn_prefix}-top-streams',
  'key.format' = 'json',
  'key.fields' = 'window_start',
  'key.json.timestamp-format.standard' = 'ISO-8601',
  ${exactly_once_json_sink}
) LIKE `${catalog}`.`${namespace}`.top_streams (EXCLUDING ALL);

CREATE TEMPORARY TABLE late_events_topic (
  event_id STRING, stream_id STRING, data_retrieved_at TIMESTAMP_LTZ(3), detected_at TIMESTAMP_LTZ(3), reason STRING
) WITH (
  'connector' = 'kafka',
  'topic' = 'late_events',
  'sink.transactional-id-prefix' = '${txn_prefix}-late',
  ${exactly_once_json_sink}
);
