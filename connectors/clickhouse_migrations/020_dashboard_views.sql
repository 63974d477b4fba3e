-- Views for the dashboard's questions, over the Flink outputs the sink loads.
-- "Now" is the newest loaded window (not the wall clock), so the views also work on replayed data.
-- Aggregate tables are read with FINAL: they are small, and a view must be exact even if a row
-- were ever delivered twice. Shares divide by the window's total (NULL when it is zero).

-- Top games in the newest minute.
CREATE VIEW IF NOT EXISTS dash_top_games_now AS
SELECT window_start, game_id, game_name, viewers_sum AS viewers, viewers_max, live_streams, new_streams
FROM game_minute_stats FINAL
WHERE window_start = (SELECT max(window_start) FROM game_minute_stats)
ORDER BY viewers_sum DESC;

-- Top games over time: per game and hour, average and peak concurrent viewers.
CREATE VIEW IF NOT EXISTS dash_top_games_hourly AS
SELECT
    toStartOfHour(window_start) AS hour,
    game_id,
    anyLast(game_name) AS game_name,
    round(avg(viewers_sum)) AS avg_viewers,
    max(viewers_sum) AS peak_viewers,
    max(live_streams) AS peak_streams,
    count() AS minutes
FROM game_minute_stats FINAL
GROUP BY hour, game_id;

-- Trends: average viewers of each game over the newest 15 minutes against the 15 before.
CREATE VIEW IF NOT EXISTS dash_game_trends AS
WITH (SELECT max(window_start) FROM game_minute_stats) AS latest
SELECT
    game_id,
    anyLast(game_name) AS game_name,
    avgIf(viewers_sum, window_start > latest - INTERVAL 15 MINUTE) AS recent_viewers,
    avgIf(viewers_sum, window_start <= latest - INTERVAL 15 MINUTE) AS previous_viewers,
    if(previous_viewers > 0, recent_viewers / previous_viewers - 1, NULL) AS growth
FROM game_minute_stats FINAL
WHERE window_start > latest - INTERVAL 30 MINUTE
GROUP BY game_id;

-- Language share of viewers and streams per minute.
CREATE VIEW IF NOT EXISTS dash_language_share AS
SELECT
    window_start,
    language,
    viewers_sum,
    live_streams,
    viewers_sum / nullIf(sum(viewers_sum) OVER (PARTITION BY window_start), 0) AS viewer_share,
    live_streams / nullIf(sum(live_streams) OVER (PARTITION BY window_start), 0) AS stream_share
FROM language_minute_stats FINAL;

-- Shares per minute for each dimension of share_minute_stats, then one view per dashboard panel.
CREATE VIEW IF NOT EXISTS dash_shares AS
SELECT
    window_start,
    dimension,
    value,
    live_streams,
    viewers_sum,
    live_streams / nullIf(sum(live_streams) OVER (PARTITION BY window_start, dimension), 0) AS stream_share,
    viewers_sum / nullIf(sum(viewers_sum) OVER (PARTITION BY window_start, dimension), 0) AS viewer_share
FROM share_minute_stats FINAL;

CREATE VIEW IF NOT EXISTS dash_mature_share AS
SELECT window_start, value = 'true' AS is_mature, live_streams, viewers_sum, stream_share, viewer_share
FROM dash_shares
WHERE dimension = 'is_mature';

CREATE VIEW IF NOT EXISTS dash_broadcaster_type_share AS
SELECT window_start, value AS broadcaster_type, live_streams, viewers_sum, stream_share, viewer_share
FROM dash_shares
WHERE dimension = 'broadcaster_type';

-- How long live streams have been live, per minute over all games.
CREATE VIEW IF NOT EXISTS dash_stream_durations AS
SELECT
    window_start,
    duration_bucket,
    sum(live_streams) AS streams,
    streams / nullIf(sum(sum(live_streams)) OVER (PARTITION BY window_start), 0) AS stream_share
FROM stream_duration_stats FINAL
GROUP BY window_start, duration_bucket;

-- The top streams of the newest minute.
CREATE VIEW IF NOT EXISTS dash_top_streams_now AS
SELECT window_start, rank_in_window, stream_id, user_login, user_name, game_id, game_name, title, language, viewer_count
FROM top_streams FINAL
WHERE window_start = (SELECT max(window_start) FROM top_streams)
ORDER BY rank_in_window;

-- One row per stream seen in the enriched snapshots: how long it has been live and its peak.
-- min/max/argMax are exact without FINAL, even before duplicate snapshots merge.
CREATE VIEW IF NOT EXISTS dash_stream_sessions AS
SELECT
    stream_id,
    argMax(user_login, data_retrieved_at) AS user_login,
    argMax(game_name, data_retrieved_at) AS game_name,
    min(started_at) AS stream_started_at,
    max(data_retrieved_at) AS last_seen,
    dateDiff('second', stream_started_at, last_seen) AS live_seconds,
    max(viewer_count) AS peak_viewers
FROM game_streams_enriched
GROUP BY stream_id;

-- The sink itself, per minute and table: throughput, dead letters, batch latency, freshness.
CREATE VIEW IF NOT EXISTS dash_sink_minutes AS
SELECT
    toStartOfMinute(committed_at) AS minute,
    target_table,
    sum(rows) / 60 AS rows_per_s,
    sum(dead_letters) AS dead_letters,
    quantile(0.99)(batch_latency_ms) AS p99_batch_latency_ms,
    max(freshness_s) AS max_freshness_s
FROM sink_batches
GROUP BY minute, target_table;
