-- Views for the chat dashboards, over the chat outputs the sink loads. As in 020_dashboard_views.sql,
-- "now" is the newest loaded window and aggregate tables are read with FINAL (small, and exact even if a
-- row were ever delivered twice).

-- Per channel, the newest minute: volume, chatters, mood, and chat against the stream.
CREATE VIEW IF NOT EXISTS dash_chat_now AS
SELECT window_start, channel, messages, unique_chatters, sentiment_avg,
    positive_messages / nullIf(messages, 0) AS positive_share,
    negative_messages / nullIf(messages, 0) AS negative_share,
    engagement_messages / nullIf(messages, 0) AS engagement_share,
    emote_only_share, viewers_avg, game_name, title, messages_per_1k_viewers, chatters_per_1k_viewers
FROM chat_minute_stats FINAL
WHERE window_start = (SELECT max(window_start) FROM chat_minute_stats)
ORDER BY messages DESC;

-- Sentiment distribution over time, per channel and minute (one row per label, for stacked charts).
CREATE VIEW IF NOT EXISTS dash_chat_sentiment AS
SELECT window_start, channel, label, messages, messages / nullIf(total, 0) AS share, sentiment_avg
FROM
(
    SELECT window_start, channel, sentiment_avg, messages AS total,
        [('negative', negative_messages), ('neutral', neutral_messages), ('positive', positive_messages)] AS labelled
    FROM chat_minute_stats FINAL
)
ARRAY JOIN labelled.1 AS label, labelled.2 AS messages;

-- Engagement against the rest, and emote-only chat, per channel and minute.
CREATE VIEW IF NOT EXISTS dash_chat_engagement AS
SELECT window_start, channel, messages, engagement_messages, non_engagement_messages,
    question_messages, mention_messages, reply_messages,
    engagement_messages / nullIf(messages, 0) AS engagement_share,
    emote_only_messages, emote_only_share
FROM chat_minute_stats FINAL;

-- Chat against the stream: how talkative each channel's audience is, per hour (minutes without a stream
-- snapshot have no viewers and are left out of the ratios).
CREATE VIEW IF NOT EXISTS dash_chat_vs_viewers_hourly AS
SELECT
    toStartOfHour(window_start) AS hour,
    channel,
    anyLast(game_name) AS game_name,
    sum(messages) AS messages,
    max(unique_chatters) AS peak_chatters_per_minute,
    round(avgIf(viewers_avg, viewers_avg IS NOT NULL)) AS avg_viewers,
    avgIf(messages_per_1k_viewers, messages_per_1k_viewers IS NOT NULL) AS messages_per_1k_viewers,
    avgIf(chatters_per_1k_viewers, chatters_per_1k_viewers IS NOT NULL) AS chatters_per_1k_viewers
FROM chat_minute_stats FINAL
GROUP BY hour, channel;

-- The most used emotes per channel over the newest hour of windows.
CREATE VIEW IF NOT EXISTS dash_chat_top_emotes_hour AS
WITH (SELECT max(window_start) FROM chat_top_emotes) AS latest
SELECT channel, emote, sum(uses) AS uses, max(chatters) AS peak_chatters_per_minute
FROM chat_top_emotes FINAL
WHERE window_start > latest - INTERVAL 1 HOUR
GROUP BY channel, emote
ORDER BY channel, uses DESC;
