-- Backfill source: the enriched snapshots of the recomputed days, read from the Iceberg lake instead of
-- Kafka, under the name aggregate_windows.sql reads (game_streams_enriched_source), so the very same window
-- SQL recomputes them. The job runs in streaming execution mode over this bounded input: batch mode
-- rejects CURRENT_WATERMARK (its argument must be a rowtime attribute, and batch has none).
--
-- The watermark stays at the epoch until the input ends, whose final watermark then fires every window:
-- no row of the lake is classed late, whatever order the lake's files are read in. (The stream classed a
-- row late only when it arrived after its window had fired; a backfill counts it, which is the correction.)
-- Columns are declared at the stream's millisecond precision; the lake keeps microseconds of the same values.
CREATE TEMPORARY TABLE game_streams_enriched_lake (
  event_id STRING, stream_id STRING, user_id STRING, user_login STRING, user_name STRING,
  game_id STRING, game_name STRING, stream_type STRING, title STRING, viewer_count INT,
  started_at TIMESTAMP_LTZ(3), `language` STRING, is_mature BOOLEAN, tags STRING,
  broadcaster_type STRING, user_description STRING, user_created_at TIMESTAMP_LTZ(3),
  data_retrieved_at TIMESTAMP_LTZ(3), retrieved_date DATE,
  WATERMARK FOR data_retrieved_at AS TO_TIMESTAMP_LTZ(0, 3)
) WITH (${lake_table_options});

-- retrieved_date is the lake's partition column (the UTC day of data_retrieved_at): whole days in, whole
-- day partitions of the aggregates out, since every window lies within the day of its rows.
CREATE TEMPORARY VIEW game_streams_enriched_source AS
SELECT * FROM game_streams_enriched_lake
WHERE retrieved_date >= DATE '${first_day}' AND retrieved_date < DATE '${end_day}';
