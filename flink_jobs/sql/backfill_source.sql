-- Backfill sources: the rows of the recomputed days, read from the Iceberg lake instead of Kafka, under the
-- names the window SQL reads (game_streams_enriched_source, chat_silver_source), so the very same window SQL
-- (aggregate_windows.sql, chat_aggregate_windows.sql) recomputes them. The job runs in streaming execution
-- mode over this bounded input: batch mode rejects CURRENT_WATERMARK (its argument must be a rowtime
-- attribute, and batch has none). A source no recomputed table reads is planned away.
--
-- The watermark stays at the epoch until the input ends, whose final watermark then fires every window:
-- no row of the lake is classed late, whatever order the lake's files are read in. (The stream classed a
-- row late only when it arrived after its window had fired; a backfill counts it, which is the correction.)
-- Columns are declared at the streams' millisecond precision; the lake keeps microseconds of the same values.
CREATE TEMPORARY TABLE game_streams_enriched_lake (
  event_id STRING, stream_id STRING, user_id STRING, user_login STRING, user_name STRING,
  game_id STRING, game_name STRING, stream_type STRING, title STRING, viewer_count INT,
  started_at TIMESTAMP_LTZ(3), `language` STRING, is_mature BOOLEAN, tags STRING,
  broadcaster_type STRING, user_description STRING, user_created_at TIMESTAMP_LTZ(3),
  data_retrieved_at TIMESTAMP_LTZ(3), retrieved_date DATE,
  WATERMARK FOR data_retrieved_at AS TO_TIMESTAMP_LTZ(0, 3)
) WITH (${lake_source:game_streams_enriched});

-- The lake's silver messages, the columns the chat gold reads, plus the partition column.
CREATE TEMPORARY TABLE chat_silver_lake (
  message_id STRING, channel STRING, chatter_id STRING, sent_at TIMESTAMP_LTZ(3),
  emote_count INT, is_emote_only BOOLEAN, emote_names STRING, sentiment DOUBLE,
  is_question BOOLEAN, is_mention BOOLEAN, is_reply BOOLEAN, is_engagement BOOLEAN, sent_date DATE,
  WATERMARK FOR sent_at AS TO_TIMESTAMP_LTZ(0, 3)
) WITH (${lake_source:chat_silver});

-- The partition columns (retrieved_date, sent_date) are the UTC days of the event times: whole days in, whole
-- day partitions of the aggregates out, since every window lies within the day of its rows. A chat minute
-- meets the stream snapshots of the same minute, so of the same day.
CREATE TEMPORARY VIEW game_streams_enriched_source AS
SELECT * FROM game_streams_enriched_lake
WHERE retrieved_date >= DATE '${first_day}' AND retrieved_date < DATE '${end_day}';

CREATE TEMPORARY VIEW chat_silver_source AS
SELECT * FROM chat_silver_lake
WHERE sent_date >= DATE '${first_day}' AND sent_date < DATE '${end_day}';
