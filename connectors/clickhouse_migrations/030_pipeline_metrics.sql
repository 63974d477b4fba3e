-- Per-stage figures of the parts that keep no table of their own (Flink jobs, producers, Kafka topics),
-- sampled by the dashboard server's collector (twitch_pipeline/dashboards/collector.py) so the
-- Pipeline health dashboard reads everything from ClickHouse, as Grafana does in a cluster.
--
-- One row per sample: stage (`producer`, `flink:<job>`, `topic:<name>`), metric (`records_per_s`,
-- `pending_records`, `restarts`, `running`) and its value. Rates are computed by the collector from
-- two successive counter readings, so a restart of the collector only loses one sample.
CREATE TABLE IF NOT EXISTS pipeline_metrics
(
    collected_at DateTime64(3, 'UTC'),
    stage LowCardinality(String),
    metric LowCardinality(String),
    value Float64
)
ENGINE = MergeTree
PARTITION BY toDate(collected_at)
ORDER BY (stage, metric, collected_at)
TTL toDateTime(collected_at) + INTERVAL 14 DAY
SETTINGS ttl_only_drop_parts = 1;
