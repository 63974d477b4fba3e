-- Enrichment: game_streams ⨝ twitch_users ⨝ twitch_games as of each snapshot, deduplicated exactly once.
--
-- Sources read raw bytes and each record is parsed once, by the project's json_object_fields function
-- (jvm/: a record's problem, its top-level scalars and arrays by name), so nothing is lost to a format's
-- "ignore parse errors": each record is a valid event, a heartbeat (moves event time only), or a dead letter
-- with a reason. (Flink 2.0's JSON_VALUE parses the whole document on every call: twenty fields were twenty
-- parses.) Typed values use TRY_CAST, so one bad field makes a dead letter, not a failing job.
-- Timestamps are read by json_timestamp (the same parse; TO_TIMESTAMP's text parsing was the next largest cost).
-- Event time is data_retrieved_at, read where the watermark is declared; a record without a usable one gets
-- the epoch, which never moves a watermark forward and is routed to the dead letters.
-- Heartbeats of game_streams travel with the snapshots through dedup and the temporal joins and are relayed
-- to every partition of game_streams_enriched (under one key per partition, chosen by the driver), so jobs
-- reading that topic drain when the producers stop.

CREATE TEMPORARY FUNCTION json_object_fields AS 'io.twitchpipeline.flink.JsonObjectFields' LANGUAGE JAVA;
-- The first required field of the topic's JSON Schema that is missing or of another JSON type (a number where
-- an id string belongs passed as valid before), from the same parse.
CREATE TEMPORARY FUNCTION json_contract_violation AS 'io.twitchpipeline.flink.JsonContractViolation' LANGUAGE JAVA;
CREATE TEMPORARY FUNCTION json_timestamp AS 'io.twitchpipeline.flink.JsonTimestamp' LANGUAGE JAVA;

-- ------------------------------------------------------------------------------------------- sources
CREATE TEMPORARY TABLE game_streams_source (
  raw_value BYTES,
  src_topic STRING METADATA FROM 'topic' VIRTUAL,
  src_partition INT METADATA FROM 'partition' VIRTUAL,
  src_offset BIGINT METADATA FROM 'offset' VIRTUAL,
  proc_time AS PROCTIME(),
  event_time AS COALESCE(json_timestamp(raw_value, 'data_retrieved_at'), TIMESTAMP '1970-01-01 00:00:00'),
  WATERMARK FOR event_time AS event_time - ${lateness}
) WITH (${kafka_source:game_streams}, 'format' = 'raw');

-- Profiles and games are compacted topics: always replay them whole to rebuild the versioned tables.
CREATE TEMPORARY TABLE twitch_users_source WITH ('topic' = 'twitch_users', 'scan.startup.mode' = 'earliest-offset')
  LIKE game_streams_source;

CREATE TEMPORARY TABLE twitch_games_source WITH ('topic' = 'twitch_games', 'scan.startup.mode' = 'earliest-offset')
  LIKE game_streams_source;

-- ------------------------------------------------------------------------------------------- sinks
-- Keyed by event_id, the topic's key (a heartbeat by the key of the partition it is meant for).
CREATE TEMPORARY TABLE game_streams_enriched_topic (
  event_id STRING, stream_id STRING, user_id STRING, user_login STRING, user_name STRING,
  game_id STRING, game_name STRING, stream_type STRING, title STRING, viewer_count INT,
  started_at TIMESTAMP_LTZ(3), `language` STRING, is_mature BOOLEAN, tags STRING,
  broadcaster_type STRING, user_description STRING, user_created_at TIMESTAMP_LTZ(3),
  data_retrieved_at TIMESTAMP_LTZ(3)
) WITH (${kafka_sink:game_streams_enriched});

CREATE TABLE IF NOT EXISTS `${catalog}`.`${namespace}`.game_streams_enriched (
  event_id STRING, stream_id STRING, user_id STRING, user_login STRING, user_name STRING,
  game_id STRING, game_name STRING, stream_type STRING, title STRING, viewer_count INT,
  started_at TIMESTAMP_LTZ(6), `language` STRING, is_mature BOOLEAN, tags STRING,
  broadcaster_type STRING, user_description STRING, user_created_at TIMESTAMP_LTZ(6),
  data_retrieved_at TIMESTAMP_LTZ(6), retrieved_date DATE
) PARTITIONED BY (retrieved_date) WITH (${lake_table});

-- ------------------------------------------------------------------------------------------- parsing
-- doc.fields: the record's top-level scalars (JSON_VALUE's text of each), doc.lists: its arrays (elements
-- comma-joined). The record's own problem (empty, oversized, invalid UTF-8, invalid JSON) comes first.
CREATE TEMPORARY VIEW game_streams_parsed AS
SELECT
  raw_value, src_topic, src_partition, src_offset, proc_time, event_time,
  COALESCE(doc.fields['heartbeat'] = 'true', FALSE) AS is_heartbeat,
  doc.fields['event_id'] AS event_id,
  doc.fields['stream_id'] AS stream_id,
  doc.fields['stream_id'] || '@' || doc.fields['data_retrieved_at'] AS snapshot_key,
  doc.fields['user_id'] AS user_id,
  doc.fields['user_login'] AS user_login,
  doc.fields['user_name'] AS user_name,
  doc.fields['game_id'] AS game_id,
  doc.fields['game_name'] AS game_name,
  doc.fields['stream_type'] AS stream_type,
  doc.fields['title'] AS title,
  TRY_CAST(doc.fields['viewer_count'] AS INT) AS viewer_count,
  json_timestamp(raw_value, 'started_at') AS started_at,
  doc.fields['language'] AS `language`,
  TRY_CAST(doc.fields['is_mature'] AS BOOLEAN) AS is_mature,
  doc.lists['tags'] AS tags,
  CASE
    WHEN doc.problem IS NOT NULL THEN doc.problem
    WHEN event_time = TIMESTAMP '1970-01-01 00:00:00' THEN 'missing or invalid data_retrieved_at'
    WHEN COALESCE(doc.fields['heartbeat'] = 'true', FALSE) THEN CAST(NULL AS STRING)
    WHEN contract_violation IS NOT NULL THEN contract_violation
    WHEN TRY_CAST(doc.fields['viewer_count'] AS INT) IS NULL THEN 'missing or invalid viewer_count'
    WHEN json_timestamp(raw_value, 'started_at') IS NULL THEN 'missing or invalid started_at'
  END AS dead_letter_reason
FROM (SELECT *, json_object_fields(raw_value, ${max_event_chars}) AS doc,
        json_contract_violation(raw_value, ${contract:game_streams}) AS contract_violation FROM game_streams_source);

CREATE TEMPORARY VIEW twitch_users_parsed AS
SELECT
  raw_value, src_topic, src_partition, src_offset, event_time,
  COALESCE(doc.fields['heartbeat'] = 'true', FALSE) AS is_heartbeat,
  doc.fields['user_id'] AS user_id,
  doc.fields['login'] AS login,
  doc.fields['display_name'] AS display_name,
  doc.fields['broadcaster_type'] AS broadcaster_type,
  doc.fields['description'] AS description,
  json_timestamp(raw_value, 'created_at') AS created_at,
  CASE
    WHEN doc.problem IS NOT NULL THEN doc.problem
    WHEN event_time = TIMESTAMP '1970-01-01 00:00:00' THEN 'missing or invalid data_retrieved_at'
    WHEN COALESCE(doc.fields['heartbeat'] = 'true', FALSE) THEN CAST(NULL AS STRING)
    WHEN contract_violation IS NOT NULL THEN contract_violation
  END AS dead_letter_reason
FROM (SELECT *, json_object_fields(raw_value, ${max_event_chars}) AS doc,
        json_contract_violation(raw_value, ${contract:twitch_users}) AS contract_violation FROM twitch_users_source);

CREATE TEMPORARY VIEW twitch_games_parsed AS
SELECT
  raw_value, src_topic, src_partition, src_offset, event_time,
  COALESCE(doc.fields['heartbeat'] = 'true', FALSE) AS is_heartbeat,
  doc.fields['game_id'] AS game_id,
  doc.fields['name'] AS name,
  CASE
    WHEN doc.problem IS NOT NULL THEN doc.problem
    WHEN event_time = TIMESTAMP '1970-01-01 00:00:00' THEN 'missing or invalid data_retrieved_at'
    WHEN COALESCE(doc.fields['heartbeat'] = 'true', FALSE) THEN CAST(NULL AS STRING)
    WHEN contract_violation IS NOT NULL THEN contract_violation
  END AS dead_letter_reason
FROM (SELECT *, json_object_fields(raw_value, ${max_event_chars}) AS doc,
        json_contract_violation(raw_value, ${contract:twitch_games}) AS contract_violation FROM twitch_games_source);

-- ------------------------------------------------------------------------------------------- versioned dimensions
-- The latest version per key as of any event time: Flink's versioned view (deduplicate keep-last on rowtime).
CREATE TEMPORARY VIEW users_versioned AS
SELECT user_id, login, display_name, broadcaster_type, description, created_at, event_time FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY event_time DESC) AS rn
  FROM twitch_users_parsed WHERE dead_letter_reason IS NULL AND NOT is_heartbeat
) WHERE rn = 1;

CREATE TEMPORARY VIEW games_versioned AS
SELECT game_id, name, event_time FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY game_id ORDER BY event_time DESC) AS rn
  FROM twitch_games_parsed WHERE dead_letter_reason IS NULL AND NOT is_heartbeat
) WHERE rn = 1;

-- ------------------------------------------------------------------------------------------- streams
-- Valid snapshots and heartbeats. A heartbeat's identity is its time: the join releases it only once the
-- watermark of every partition has passed it, so one relay per time is enough (the dedup below keeps one).
CREATE TEMPORARY VIEW game_streams_valid AS
SELECT proc_time, event_time, is_heartbeat, stream_id, user_id, user_login, user_name, game_id, game_name,
  stream_type, title, viewer_count, started_at, `language`, is_mature, tags,
  COALESCE(heartbeat_id, event_id) AS event_id,
  COALESCE(heartbeat_id, snapshot_key) AS snapshot_key,
  (CURRENT_WATERMARK(event_time) IS NOT NULL AND event_time <= CURRENT_WATERMARK(event_time)) AS is_late
FROM (
  SELECT *, CASE WHEN is_heartbeat THEN '${heartbeat_key}@' || CAST(event_time AS STRING) END AS heartbeat_id
  FROM game_streams_parsed WHERE dead_letter_reason IS NULL
);

-- Exactly-once dedup: by (stream_id, data_retrieved_at), then by event_id. Copies of an event carry its event
-- time, so they always meet in the same window of a window deduplication; half-second windows, released once
-- the watermark passes their end. (One-second windows until session 14: a row waits up to a window for its end, and
-- halving it took p99 at ~8,000/s from 3.9-4.4 s to 3.0 s end to end. Windows shorter than the 200 ms watermark
-- interval lost rows between the two cascaded steps under a steady stream of distinct timestamps: measured, so
-- keep them well above it.)
-- Their state is dropped once the watermark passes them, and the output is append-only
-- (a copy arriving after that is late: it goes to late_events, not downstream). The first step sees the
-- input in arrival order, so among copies of a snapshot (all at one event time) the first arrival wins; the
-- second sees the first step's output in no particular order and keeps the earliest event time of an
-- event_id (several snapshots under one event_id would be a producer bug).
CREATE TEMPORARY VIEW game_streams_on_time AS
SELECT proc_time, event_time, is_heartbeat, event_id, stream_id, snapshot_key, user_id, user_login, user_name, game_id, game_name, stream_type, title, viewer_count, started_at, `language`, is_mature, tags FROM game_streams_valid WHERE NOT is_late;

CREATE TEMPORARY VIEW game_streams_unique_snapshot AS
SELECT proc_time, event_time, is_heartbeat, event_id, stream_id, snapshot_key, user_id, user_login, user_name, game_id, game_name, stream_type, title, viewer_count, started_at, `language`, is_mature, tags FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end, snapshot_key ORDER BY event_time ASC) AS rn
  FROM TABLE(TUMBLE(TABLE game_streams_on_time, DESCRIPTOR(event_time), INTERVAL '0.5' SECOND))
) WHERE rn = 1;

-- From here on rows are timed by their dedup window (row_time = window_time, the end of their window), not by
-- event_time. A window fires when the watermark reaches its end, and its rows are then up to a window behind that
-- watermark: at parallelism 2 one dedup subtask fired a (one-second) window before the other, the temporal sort downstream emitted
-- the first half and then dropped the second as late, silently (89 of 100 rows of one poll missing from the topic
-- but in the lake, crash test at load ~15). Timed by window_time, every row of a window is at, never behind, the
-- watermark that released it. Profiles and games are therefore joined as of the end of the snapshot's window.
CREATE TEMPORARY VIEW game_streams_unique AS
SELECT proc_time, event_time, window_time AS row_time, is_heartbeat, event_id, stream_id, snapshot_key, user_id, user_login, user_name, game_id, game_name, stream_type, title, viewer_count, started_at, `language`, is_mature, tags FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end, event_id ORDER BY event_time ASC) AS rn
  FROM TABLE(TUMBLE(TABLE game_streams_unique_snapshot, DESCRIPTOR(event_time), INTERVAL '0.5' SECOND))
) WHERE rn = 1;

-- A snapshot whose profile or game is not known at its event time is emitted with NULL profile/game columns
-- (LEFT temporal join), never held back or dropped. Heartbeats (no user, no game) pass through the same way.
CREATE TEMPORARY VIEW game_streams_joined AS
SELECT
  s.is_heartbeat, s.event_id, s.stream_id, s.user_id,
  COALESCE(s.user_login, u.login) AS user_login,
  COALESCE(s.user_name, u.display_name) AS user_name,
  s.game_id,
  COALESCE(g.name, s.game_name) AS game_name,
  s.stream_type, s.title, s.viewer_count,
  CAST(s.started_at AS TIMESTAMP_LTZ(3)) AS started_at,
  s.`language`, s.is_mature, s.tags,
  u.broadcaster_type,
  u.description AS user_description,
  CAST(u.created_at AS TIMESTAMP_LTZ(3)) AS user_created_at,
  CAST(s.event_time AS TIMESTAMP_LTZ(3)) AS data_retrieved_at,
  s.row_time
FROM game_streams_unique AS s
LEFT JOIN users_versioned FOR SYSTEM_TIME AS OF s.row_time AS u ON s.user_id = u.user_id
LEFT JOIN games_versioned FOR SYSTEM_TIME AS OF s.row_time AS g ON s.game_id = g.game_id;

CREATE TEMPORARY VIEW game_streams_enriched AS
SELECT event_id, stream_id, user_id, user_login, user_name, game_id, game_name, stream_type, title, viewer_count,
  started_at, `language`, is_mature, tags, broadcaster_type, user_description, user_created_at, data_retrieved_at
FROM game_streams_joined WHERE NOT is_heartbeat;

-- ------------------------------------------------------------------------------------------- outputs
-- Each snapshot once under its event_id; each heartbeat once per output partition. In event-time order:
-- a join releases rows key by key, so after a backlog its output spans many minutes out of order, which
-- would make a reader of this topic (the aggregation) class rows as late. Sorted, every partition of the
-- topic is in event-time order (by dedup window, then by data_retrieved_at) and a relayed heartbeat follows every row up
-- to its time.
INSERT INTO game_streams_enriched_topic
SELECT relay.out_key, stream_id, user_id, user_login, user_name, game_id, game_name, stream_type, title, viewer_count,
  started_at, `language`, is_mature, tags, broadcaster_type, user_description, user_created_at, data_retrieved_at
FROM game_streams_joined
CROSS JOIN UNNEST(CASE WHEN is_heartbeat THEN ARRAY[${heartbeat_keys}] ELSE ARRAY[event_id] END) AS relay(out_key)
ORDER BY row_time, data_retrieved_at;

INSERT INTO `${catalog}`.`${namespace}`.game_streams_enriched
SELECT *, CAST(data_retrieved_at AS DATE) AS retrieved_date FROM game_streams_enriched;

INSERT INTO late_events_topic
SELECT event_id, stream_id, CAST(event_time AS TIMESTAMP_LTZ(3)), CAST(proc_time AS TIMESTAMP_LTZ(3)), 'late'
FROM game_streams_valid WHERE is_late AND NOT is_heartbeat;

INSERT INTO dead_letter_topic
-- The payload as text only for the dead letters: decoding every record would cost as much as a field or two.
SELECT src_topic, src_partition, src_offset, dead_letter_reason, DECODE(raw_value, 'UTF-8'), CAST(proc_time AS TIMESTAMP_LTZ(3)),
  'enrich_streams'
FROM (
  SELECT src_topic, src_partition, src_offset, dead_letter_reason, raw_value, proc_time FROM game_streams_parsed
  UNION ALL
  SELECT src_topic, src_partition, src_offset, dead_letter_reason, raw_value, PROCTIME() FROM twitch_users_parsed
  UNION ALL
  SELECT src_topic, src_partition, src_offset, dead_letter_reason, raw_value, PROCTIME() FROM twitch_games_parsed
) WHERE dead_letter_reason IS NOT NULL;
