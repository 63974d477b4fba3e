-- The side outputs every job may write, declared once (runtime.start_job runs this before the job's own SQL):
-- events behind a stage's watermark, and records a job could not process, each with its reason and the stage.
-- Exactly once like every output; see the late_events output in connectors/catalog.py for the columns.

CREATE TEMPORARY TABLE late_events_topic (
  event_id STRING, stream_id STRING, data_retrieved_at TIMESTAMP_LTZ(3), detected_at TIMESTAMP_LTZ(3), reason STRING
) WITH (${kafka_sink:late_events});

CREATE TEMPORARY TABLE dead_letter_topic (
  source_topic STRING, source_partition INT, source_offset BIGINT, reason STRING, payload STRING,
  detected_at TIMESTAMP_LTZ(3), stage STRING
) WITH (${kafka_sink:dead_letter});
