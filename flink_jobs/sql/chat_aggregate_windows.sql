-- Chat gold, part 2: 1-minute event-time windows of sent_at per channel, joined with the channel's stream.
--
--   chat_minute_stats  window aggregation of the silver messages, then a LEFT window join with the same
--                      minute of the channel's stream snapshots (channel login = user_login): viewers avg/max,
--                      game, title, and messages and unique chatters per 1,000 viewers. A minute without a
--                      snapshot keeps its chat figures with NULL stream columns.
--   chat_top_emotes    the emotes of each message (silver's emote_names), counted per channel and minute,
--                      ranked (window Top-N), ties broken by emote name.
-- Messages arriving after their window fired go to late_events (`chat_late_for_window`), as in aggregate_windows.sql.
-- This file declares the views; chat_aggregate_outputs.sql writes them (see chat_aggregate.py for why apart).
-- The join fires when the watermarks of both sources pass the minute: chat_enrich and enrich_streams relay
-- heartbeats to every partition of their outputs, so both drain when the producers stop.

-- ------------------------------------------------------------------------------------------- lateness
CREATE TEMPORARY VIEW chat_with_lateness AS
SELECT *,
  CURRENT_WATERMARK(sent_at) IS NOT NULL
  AND FLOOR(sent_at TO MINUTE) < FLOOR(CURRENT_WATERMARK(sent_at) + INTERVAL '0.001' SECOND TO MINUTE) AS is_late
FROM chat_silver_source
WHERE POSITION('${heartbeat_key}' IN message_id) <> 1;

CREATE TEMPORARY VIEW chat_on_time AS SELECT * FROM chat_with_lateness WHERE is_late IS NOT TRUE;

-- ------------------------------------------------------------------------------------------- per channel and minute
CREATE TEMPORARY VIEW chat_minutes AS
SELECT window_time AS minute_time, channel,
  COUNT(*) AS messages,
  COUNT(DISTINCT chatter_id) AS unique_chatters,
  AVG(sentiment) AS sentiment_avg,
  COUNT(*) FILTER (WHERE sentiment <= -0.05) AS negative_messages,
  COUNT(*) FILTER (WHERE sentiment > -0.05 AND sentiment < 0.05) AS neutral_messages,
  COUNT(*) FILTER (WHERE sentiment >= 0.05) AS positive_messages,
  COUNT(*) FILTER (WHERE is_engagement) AS engagement_messages,
  COUNT(*) FILTER (WHERE is_question) AS question_messages,
  COUNT(*) FILTER (WHERE is_mention) AS mention_messages,
  COUNT(*) FILTER (WHERE is_reply) AS reply_messages,
  COUNT(*) FILTER (WHERE is_emote_only) AS emote_only_messages,
  SUM(CAST(emote_count AS BIGINT)) AS emotes
FROM TABLE(TUMBLE(TABLE chat_on_time, DESCRIPTOR(sent_at), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, window_time, channel;

-- The channel's stream in the minute; snapshots late for their window are reported by aggregate_streams.
CREATE TEMPORARY VIEW channel_stream_minutes AS
SELECT window_time AS minute_time, user_login,
  AVG(CAST(viewer_count AS DOUBLE)) AS viewers_avg,
  MAX(viewer_count) AS viewers_max,
  MAX(game_name) AS game_name,  -- deterministic if the game or title changed within the minute
  MAX(title) AS title
FROM TABLE(TUMBLE(TABLE game_streams_enriched_source, DESCRIPTOR(data_retrieved_at), INTERVAL '1' MINUTE))
WHERE POSITION('${heartbeat_key}' IN event_id) <> 1 AND user_login IS NOT NULL
GROUP BY window_start, window_end, window_time, user_login;

-- Both sides windowed again on their window_time (the minute's last millisecond): the same minute, now as
-- window TVFs that a window join accepts.
CREATE TEMPORARY VIEW chat_minute_stats AS
SELECT
  CAST(c.window_start AS TIMESTAMP_LTZ(6)) AS window_start, CAST(c.window_end AS TIMESTAMP_LTZ(6)) AS window_end, c.channel,
  c.messages, c.unique_chatters, c.sentiment_avg, c.negative_messages, c.neutral_messages, c.positive_messages,
  c.engagement_messages, c.messages - c.engagement_messages AS non_engagement_messages,
  c.question_messages, c.mention_messages, c.reply_messages,
  c.emote_only_messages, CAST(c.emote_only_messages AS DOUBLE) / c.messages AS emote_only_share, c.emotes,
  s.viewers_avg, s.viewers_max, s.game_name, s.title,
  CASE WHEN s.viewers_avg > 0 THEN c.messages * 1000.0 / s.viewers_avg END AS messages_per_1k_viewers,
  CASE WHEN s.viewers_avg > 0 THEN c.unique_chatters * 1000.0 / s.viewers_avg END AS chatters_per_1k_viewers
FROM (SELECT * FROM TABLE(TUMBLE(TABLE chat_minutes, DESCRIPTOR(minute_time), INTERVAL '1' MINUTE))) AS c
LEFT JOIN (SELECT * FROM TABLE(TUMBLE(TABLE channel_stream_minutes, DESCRIPTOR(minute_time), INTERVAL '1' MINUTE))) AS s
ON c.window_start = s.window_start AND c.window_end = s.window_end AND c.channel = s.user_login;

-- ------------------------------------------------------------------------------------------- top emotes
-- The UNNEST is a correlated join, and its correlation variable is numbered anew each time a SQL view is expanded,
-- so the Kafka and the Iceberg INSERT would each plan (and run) their own copy of everything above it. The driver
-- re-registers this view as the Table it plans to, once, before the INSERTs read it: both share one aggregation.
CREATE TEMPORARY VIEW chat_emote_uses AS
SELECT sent_at, channel, chatter_id, e.emote
FROM chat_on_time CROSS JOIN UNNEST(SPLIT(emote_names, ' ')) AS e (emote)
WHERE emote_names <> '' AND e.emote <> '';

CREATE TEMPORARY VIEW chat_top_emotes AS
SELECT
  CAST(window_start AS TIMESTAMP_LTZ(6)) AS window_start, CAST(window_end AS TIMESTAMP_LTZ(6)) AS window_end,
  channel, CAST(rank_in_window AS INT) AS rank_in_window, emote, uses, chatters
FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end, channel ORDER BY uses DESC, emote ASC) AS rank_in_window
  FROM (
    SELECT window_start, window_end, channel, emote, COUNT(*) AS uses, COUNT(DISTINCT chatter_id) AS chatters
    FROM TABLE(TUMBLE(TABLE chat_emote_uses, DESCRIPTOR(sent_at), INTERVAL '1' MINUTE))
    GROUP BY window_start, window_end, channel, emote
  )
) WHERE rank_in_window <= 10;
