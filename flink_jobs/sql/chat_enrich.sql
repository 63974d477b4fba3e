-- Chat bronze and silver: every chat_messages record kept once, valid messages deduplicated and scored.
--
-- The source reads raw bytes, so nothing is lost to a format's "ignore parse errors". One vectorized Python
-- UDF, parse_chat (flink_jobs/chat_udfs.py, registered by the driver), decodes each record, checks it
-- against the chat_messages JSON Schema and the emote positions, and scores the valid ones; its result
-- is computed once and read by every output below (the planner reuses the view).
--   bronze   lake.chat_bronze: every record but heartbeats, with the raw bytes, parse_status and parse_error.
--            Exactly once through Iceberg's checkpoint commits; (topic, kafka_partition, kafka_offset) is unique.
--   dead     PARSE_ERROR and SCHEMA_ERROR records also go to dead_letter (payload cut to ${max_event_chars} characters,
--            the full bytes stay in bronze).
--   silver   OK messages, one per message_id, to the chat_silver topic (exactly once) and lake.chat_silver.
-- Event time is sent_at (a heartbeat's data_retrieved_at); a record without one gets the epoch, which never moves
-- the watermark (such a record is malformed anyway and only reaches bronze and the dead letters). The JVM reads
-- the timestamps with json_timestamp (jvm/: each record parsed once per task thread, the producers' timestamp form
-- read directly), as enrich_streams does: JSON_VALUE parsed the record anew for each field in the watermark
-- generator and again in the projection, and TO_TIMESTAMP's text parsing cost as much again.

CREATE TEMPORARY FUNCTION json_timestamp AS 'io.twitchpipeline.flink.JsonTimestamp' LANGUAGE JAVA;

-- ------------------------------------------------------------------------------------------- source
CREATE TEMPORARY TABLE chat_messages_source (
  raw_value BYTES,
  src_topic STRING METADATA FROM 'topic' VIRTUAL,
  src_partition INT METADATA FROM 'partition' VIRTUAL,
  src_offset BIGINT METADATA FROM 'offset' VIRTUAL,
  kafka_timestamp TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  proc_time AS PROCTIME(),
  event_time AS COALESCE(json_timestamp(raw_value, 'sent_at'), json_timestamp(raw_value, 'data_retrieved_at'), TIMESTAMP '1970-01-01 00:00:00'),
  WATERMARK FOR event_time AS event_time - ${lateness}
) WITH (${kafka_source:chat_messages}, 'format' = 'raw');

-- ------------------------------------------------------------------------------------------- sinks
CREATE TABLE IF NOT EXISTS `${catalog}`.`${namespace}`.chat_bronze (
  topic STRING, kafka_partition INT, kafka_offset BIGINT, kafka_timestamp TIMESTAMP_LTZ(6),
  raw_payload BYTES, ingest_ts TIMESTAMP_LTZ(6), parse_status STRING, parse_error STRING,
  message_id STRING, channel STRING, ingest_date DATE
) PARTITIONED BY (ingest_date) WITH (${lake_table}, 'parquet.enable.dictionary' = 'false');

CREATE TABLE IF NOT EXISTS `${catalog}`.`${namespace}`.chat_silver (
  message_id STRING, channel STRING, channel_id STRING, chatter_id STRING, chatter_login STRING, chatter_name STRING,
  `text` STRING, badges STRING, reply_parent_message_id STRING, mentions STRING,
  sent_at TIMESTAMP_LTZ(6), data_retrieved_at TIMESTAMP_LTZ(6),
  message_length INT, char_entropy DOUBLE, emote_count INT, emote_ratio DOUBLE, is_emote_only BOOLEAN, emote_names STRING,
  sentiment DOUBLE, sentiment_label STRING, is_question BOOLEAN, is_mention BOOLEAN, is_reply BOOLEAN, is_engagement BOOLEAN,
  engagement_kinds STRING, source_partition INT, source_offset BIGINT, sent_date DATE
) PARTITIONED BY (sent_date) WITH (${lake_table}, 'parquet.enable.dictionary' = 'false');

-- Keyed by message_id (a heartbeat by the key of the partition it is meant for).
CREATE TEMPORARY TABLE chat_silver_topic (
  message_id STRING, channel STRING, channel_id STRING, chatter_id STRING, chatter_login STRING, chatter_name STRING,
  `text` STRING, badges STRING, reply_parent_message_id STRING, mentions STRING,
  sent_at TIMESTAMP_LTZ(3), data_retrieved_at TIMESTAMP_LTZ(3),
  message_length INT, char_entropy DOUBLE, emote_count INT, emote_ratio DOUBLE, is_emote_only BOOLEAN, emote_names STRING,
  sentiment DOUBLE, sentiment_label STRING, is_question BOOLEAN, is_mention BOOLEAN, is_reply BOOLEAN, is_engagement BOOLEAN,
  engagement_kinds STRING, source_partition INT, source_offset BIGINT
) WITH (${kafka_sink:chat_silver});

-- ------------------------------------------------------------------------------------------- parsing
CREATE TEMPORARY VIEW chat_parsed AS
SELECT src_topic, src_partition, src_offset, kafka_timestamp, proc_time, event_time, raw_value, parse_chat(raw_value, ${max_event_chars}) AS p
FROM chat_messages_source;

CREATE TEMPORARY VIEW chat_records AS
SELECT src_topic, src_partition, src_offset, kafka_timestamp, proc_time, event_time, raw_value,
  p.parse_status AS parse_status, p.parse_error AS parse_error, p.message_id AS message_id, p.channel AS channel,
  p.channel_id AS channel_id, p.chatter_id AS chatter_id, p.chatter_login AS chatter_login, p.chatter_name AS chatter_name,
  p.`text` AS `text`, p.badges AS badges, p.reply_parent_message_id AS reply_parent_message_id, p.mentions AS mentions,
  -- from the UDF, which has the record parsed (json_timestamp here would parse it again: the UDF answers a batch later)
  TO_TIMESTAMP_LTZ(p.data_retrieved_ms, 3) AS data_retrieved_at, p.message_length AS message_length, p.char_entropy AS char_entropy,
  p.emote_count AS emote_count, p.emote_ratio AS emote_ratio, p.is_emote_only AS is_emote_only, p.emote_names AS emote_names,
  p.sentiment AS sentiment, p.is_question AS is_question, p.is_mention AS is_mention, p.is_reply AS is_reply
FROM chat_parsed;

-- ------------------------------------------------------------------------------------------- silver
-- Valid messages and heartbeats. A heartbeat's identity is its time, so the dedup keeps one per time.
CREATE TEMPORARY VIEW chat_valid AS
SELECT *,
  COALESCE(message_id, '${heartbeat_key}@' || CAST(event_time AS STRING)) AS dedup_key,
  (CURRENT_WATERMARK(event_time) IS NOT NULL AND event_time <= CURRENT_WATERMARK(event_time)) AS is_late
FROM chat_records WHERE parse_status IN ('OK', 'HEARTBEAT');

CREATE TEMPORARY VIEW chat_on_time AS
SELECT event_time, dedup_key, parse_status, message_id, channel, channel_id, chatter_id, chatter_login, chatter_name, `text`, badges,
  reply_parent_message_id, mentions, data_retrieved_at, message_length, char_entropy, emote_count, emote_ratio, is_emote_only,
  emote_names, sentiment, is_question, is_mention, is_reply, src_partition, src_offset
FROM chat_valid WHERE NOT is_late;

-- Exactly-once dedup by message_id: copies of a message carry its sent_at, so they always meet in the same
-- window of a window deduplication (as in enrich_streams.sql); the first arrival wins, state is dropped once
-- the watermark passes the one-second window, and the output is append-only. A copy arriving after that is
-- late: it goes to late_events, never downstream. Rows leave timed by their window (row_time = window_time, the end
-- of their second), for the sort before the silver topic below.
CREATE TEMPORARY VIEW chat_unique AS
SELECT window_time AS row_time, event_time, dedup_key, parse_status, message_id, channel, channel_id, chatter_id, chatter_login, chatter_name, `text`, badges,
  reply_parent_message_id, mentions, data_retrieved_at, message_length, char_entropy, emote_count, emote_ratio, is_emote_only,
  emote_names, sentiment, is_question, is_mention, is_reply, src_partition, src_offset
FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end, dedup_key ORDER BY event_time ASC) AS rn
  FROM TABLE(TUMBLE(TABLE chat_on_time, DESCRIPTOR(event_time), INTERVAL '1' SECOND))
) WHERE rn = 1;

-- The silver columns; heartbeat rows (message_id NULL) travel along only to be relayed.
CREATE TEMPORARY VIEW chat_silver_rows AS
SELECT row_time, parse_status = 'HEARTBEAT' AS is_heartbeat, dedup_key,
  message_id, channel, channel_id, chatter_id, chatter_login, chatter_name, `text`, badges, reply_parent_message_id, mentions,
  CAST(event_time AS TIMESTAMP_LTZ(3)) AS sent_at,
  data_retrieved_at,
  message_length, char_entropy, emote_count, emote_ratio, is_emote_only, emote_names, sentiment,
  -- VADER's recommended thresholds
  CASE WHEN sentiment >= 0.05 THEN 'positive' WHEN sentiment <= -0.05 THEN 'negative' WHEN sentiment IS NOT NULL THEN 'neutral' END
    AS sentiment_label,
  is_question, is_mention, is_reply, is_question OR is_mention OR is_reply AS is_engagement,
  CONCAT_WS(',', CASE WHEN is_question THEN 'question' END, CASE WHEN is_mention THEN 'mention' END, CASE WHEN is_reply THEN 'reply' END)
    AS engagement_kinds,
  src_partition AS source_partition, src_offset AS source_offset
FROM chat_unique;

-- ------------------------------------------------------------------------------------------- outputs
-- One bronze writer, whatever the job's parallelism. Bronze is the only Iceberg output fed straight from the
-- source (the others come through a keyed exchange, so all their writers end together). Chained to the source, each
-- writer ends when its subtask's partitions run out, and Iceberg's FlinkSink (v1, 1.10) files every writer's
-- end-of-input files under one id: a checkpoint between two writers' ends let the second replace the first's, and
-- a bounded run at parallelism 2 lost the tail of the partition that ended first (330-698 rows in 3 of 5 runs;
-- tests/integration/test_bounded_parallel.py). The v2 sink is no way out: it commits nothing it flushes at end.
INSERT INTO `${catalog}`.`${namespace}`.chat_bronze /*+ OPTIONS('write-parallelism' = '1') */
SELECT src_topic, src_partition, src_offset, CAST(kafka_timestamp AS TIMESTAMP_LTZ(6)), raw_value, CAST(proc_time AS TIMESTAMP_LTZ(6)),
  parse_status, parse_error, message_id, channel, CAST(proc_time AS DATE)
FROM chat_records WHERE parse_status <> 'HEARTBEAT';

INSERT INTO dead_letter_topic
SELECT src_topic, src_partition, src_offset, parse_status || ': ' || parse_error,
  SUBSTRING(DECODE(raw_value, 'UTF-8') FROM 1 FOR ${max_event_chars}), CAST(proc_time AS TIMESTAMP_LTZ(3)), 'chat_enrich'
FROM chat_records WHERE parse_status IN ('PARSE_ERROR', 'SCHEMA_ERROR');

-- Each message once under its message_id; each heartbeat once per partition of chat_silver, so the
-- aggregation reading it drains when the producers stop (heartbeat rows carry only message_id and sent_at).
-- In event-time order, a second at a time: chat_aggregate's watermark follows each partition of chat_silver
-- with only the watermark lateness behind. Above parallelism 1, every dedup subtask writes every partition and
-- one releases its seconds ahead of the other; unsorted, the streaming chain at parallelism 2 classed 3,797 of
-- 284,949 messages late for their minute (session 7). The sort (one task) releases each second once every dedup
-- subtask's watermark has passed it, as enrich_streams does; lake.chat_silver needs no order and skips it.
INSERT INTO chat_silver_topic
SELECT relay.out_key, channel, channel_id, chatter_id, chatter_login, chatter_name, `text`, badges, reply_parent_message_id, mentions,
  sent_at, data_retrieved_at, message_length, char_entropy, emote_count, emote_ratio, is_emote_only, emote_names, sentiment,
  sentiment_label, is_question, is_mention, is_reply, is_engagement, engagement_kinds, source_partition, source_offset
FROM chat_silver_rows
CROSS JOIN UNNEST(CASE WHEN is_heartbeat THEN ARRAY[${heartbeat_keys}] ELSE ARRAY[message_id] END) AS relay(out_key)
ORDER BY row_time;

INSERT INTO `${catalog}`.`${namespace}`.chat_silver
SELECT message_id, channel, channel_id, chatter_id, chatter_login, chatter_name, `text`, badges, reply_parent_message_id, mentions,
  sent_at, data_retrieved_at, message_length, char_entropy, emote_count, emote_ratio, is_emote_only, emote_names, sentiment,
  sentiment_label, is_question, is_mention, is_reply, is_engagement, engagement_kinds, source_partition, source_offset, CAST(sent_at AS DATE)
FROM chat_silver_rows WHERE NOT is_heartbeat;

INSERT INTO late_events_topic
SELECT message_id, channel, CAST(event_time AS TIMESTAMP_LTZ(3)), CAST(proc_time AS TIMESTAMP_LTZ(3)), 'chat_late_for_dedup'
FROM chat_valid WHERE is_late AND parse_status = 'OK';
