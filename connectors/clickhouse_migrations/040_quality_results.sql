-- Results of the data quality checks (connectors/quality, `twitch-pipeline check`, the Airflow data quality DAG):
-- one row per check, table and store per run. Written once per run (no key to collapse on: every run is
-- history), so a plain MergeTree; partitioned by day and kept 90 days for the dashboards' trends.
--   status:    pass, fail, skipped (table not there yet) or error (store unreachable, check cannot run)
--   failures:  failing rows; for `unique` the duplicated key values; for `freshness` 1 when stale
--   examples:  up to 5 failing rows as a JSON array of objects
CREATE TABLE IF NOT EXISTS quality_results
(
    run_at DateTime64(3, 'UTC'),
    run_id String,
    check_name String,
    kind LowCardinality(String),
    table_name LowCardinality(String),
    store LowCardinality(String),
    status LowCardinality(String),
    rows_tested UInt64,
    failures UInt64,
    examples String,
    detail String
)
ENGINE = MergeTree
PARTITION BY toDate(run_at)
ORDER BY (table_name, check_name, store, run_at)
TTL toDateTime(run_at) + INTERVAL 90 DAY
SETTINGS ttl_only_drop_parts = 1;

-- The latest result of each check in each store: what a dashboard's status panel shows.
CREATE VIEW IF NOT EXISTS quality_latest AS
SELECT
    table_name,
    check_name,
    store,
    argMax(status, quality_results.run_at) AS status,
    argMax(rows_tested, quality_results.run_at) AS rows_tested,
    argMax(failures, quality_results.run_at) AS failures,
    argMax(examples, quality_results.run_at) AS examples,
    argMax(detail, quality_results.run_at) AS detail,
    max(run_at) AS latest_run_at
FROM quality_results
GROUP BY table_name, check_name, store;
