-- Chat gold, part 1: the sources and every output table.
--
-- As in aggregate_tables.sql, the Iceberg gold tables declare the output columns and each Kafka topic is
-- declared LIKE its table. The driver partitions the gold tables by day(window_start) after this script.

-- ------------------------------------------------------------------------------------------- sources
-- Timestamps are read as text and converted by iso_timestamp (jvm/): the JSON format's own TIMESTAMP_LTZ reader
-- measured as 9 % of this job's CPU. The rowtime column is computed under another name and renamed back by the
-- view each source is read through (a rename keeps it the rowtime), because a JSON field is read only into a
-- column of its own name. The views are the names the window SQL reads, as backfill_source.sql's are.
CREATE TEMPORARY FUNCTION iso_timestamp AS 'io.twitchpipeline.flink.IsoTimestamp' LANGUAGE JAVA;

-- Written exactly once by chat_enrich (read_committed); event time is sent_at, a watermark after every
-- event so the late/on-time split depends only on the order of the input. Heartbeat rows (relayed by
-- chat_enrich to every partition) move the watermark and are dropped below.
CREATE TEMPORARY TABLE chat_silver_json (
  message_id STRING, channel STRING, chatter_id STRING, sent_at STRING,
  emote_count INT, is_emote_only BOOLEAN, emote_names STRING, sentiment DOUBLE,
  is_question BOOLEAN, is_mention BOOLEAN, is_reply BOOLEAN, is_engagement BOOLEAN,
  sent_time AS iso_timestamp(sent_at),
  WATERMARK FOR sent_time AS sent_time - ${lateness}
) WITH (${kafka_source:chat_silver}, 'scan.watermark.emit.strategy' = 'on-event', 'format' = 'json', 'json.ignore-parse-errors' = 'false');

CREATE TEMPORARY VIEW chat_silver_source AS
SELECT message_id, channel, chatter_id, sent_time AS sent_at, emote_count, is_emote_only, emote_names, sentiment,
  is_question, is_mention, is_reply, is_engagement
FROM chat_silver_json;

-- The stream snapshots (written by enrich_streams, heartbeats relayed to every partition): the viewers,
-- game and title of each channel's stream in each minute.
CREATE TEMPORARY TABLE game_streams_enriched_json (
  event_id STRING, user_login STRING, game_name STRING, title STRING, viewer_count INT, data_retrieved_at STRING,
  retrieved_time AS iso_timestamp(data_retrieved_at),
  WATERMARK FOR retrieved_time AS retrieved_time - ${lateness}
) WITH (${kafka_source:game_streams_enriched}, 'scan.watermark.emit.strategy' = 'on-event', 'format' = 'json');

CREATE TEMPORARY VIEW game_streams_enriched_source AS
SELECT event_id, user_login, game_name, title, viewer_count, retrieved_time AS data_retrieved_at
FROM game_streams_enriched_json;

-- ------------------------------------------------------------------------------------------- gold tables
CREATE TABLE IF NOT EXISTS `${catalog}`.`${namespace}`.chat_minute_stats (
  window_start TIMESTAMP_LTZ(6), window_end TIMESTAMP_LTZ(6), channel STRING,
  messages BIGINT, unique_chatters BIGINT, sentiment_avg DOUBLE,
  negative_messages BIGINT, neutral_messages BIGINT, positive_messages BIGINT,
  engagement_messages BIGINT, non_engagement_messages BIGINT, question_messages BIGINT, mention_messages BIGINT, reply_messages BIGINT,
  emote_only_messages BIGINT, emote_only_share DOUBLE, emotes BIGINT,
  viewers_avg DOUBLE, viewers_max INT, game_name STRING, title STRING,
  messages_per_1k_viewers DOUBLE, chatters_per_1k_viewers DOUBLE
) WITH (${lake_table});

CREATE TABLE IF NOT EXISTS `${catalog}`.`${namespace}`.chat_top_emotes (
  window_start TIMESTAMP_LTZ(6), window_end TIMESTAMP_LTZ(6), channel STRING, rank_in_window INT,
  emote STRING, uses BIGINT, chatters BIGINT
) WITH (${lake_table});

-- ------------------------------------------------------------------------------------------- output topics
CREATE TEMPORARY TABLE chat_minute_stats_topic WITH (${kafka_sink:chat_minute_stats}) LIKE `${catalog}`.`${namespace}`.chat_minute_stats (EXCLUDING ALL);

CREATE TEMPORARY TABLE chat_top_emotes_topic WITH (${kafka_sink:chat_top_emotes}) LIKE `${catalog}`.`${namespace}`.chat_top_emotes (EXCLUDING ALL);
