"""The whole pipeline as `make run` starts it: producer → Kafka → Flink → sink → ClickHouse, reconciled exactly.

A bounded synthetic run with injected duplicates and malformed events; the producer's summary says how
many unique valid stream snapshots it sent, and ClickHouse must end up with exactly that many rows —
counted without FINAL, so neither the Flink dedup nor the sink may let a duplicate through. The streaming
aggregation must then drain without further input (heartbeats relayed through the enrichment job close
its last windows) and agree with the enriched rows: every stream counts once in every minute it was live.
"""

from __future__ import annotations

import json

from connectors.clickhouse import clickhouse_client
from tests.cli import run_cli
from twitch_pipeline.errors import wait_until
from twitch_pipeline.platform.lifecycle import (
    status,
)


def test_synthetic_run_lands_in_clickhouse_exactly_once(pipeline, tmp_path):
    summary_path = tmp_path / "summary.json"
    produced = run_cli(pipeline, "produce", "--source", "synthetic", "--events", "4000", "--duplicates", "0.1",
                       "--malformed", "0.02", "--seed", "11", "--rate", "0", "--summary", str(summary_path))
    assert produced.returncode == 0, produced.stderr
    streams = json.loads(summary_path.read_text())["game_streams"]
    assert streams["duplicates"] > 0 and streams["malformed"] > 0

    with clickhouse_client(pipeline) as client:
        def loaded() -> bool:
            return client.query("SELECT count() FROM game_streams_enriched").result_rows[0][0] >= streams["unique"]

        wait_until(loaded, 400, f"{streams['unique']} unique stream snapshots in ClickHouse", interval_s=2)
        rows, ids = client.query("SELECT count(), uniqExact(event_id) FROM game_streams_enriched").result_rows[0]
        late = client.query("SELECT count() FROM late_events").result_rows[0][0]
    assert rows == ids == streams["unique"], f"{rows} rows, {ids} distinct event ids, {streams['unique']} sent, {late} late"

    with clickhouse_client(pipeline) as client:
        (stream_minutes,) = client.query("SELECT uniqExact(stream_id, toStartOfMinute(data_retrieved_at)) FROM game_streams_enriched").result_rows[0]

        def aggregated() -> int:
            return client.query("SELECT sum(live_streams) FROM game_minute_stats").result_rows[0][0] or 0

        wait_until(lambda: aggregated() >= stream_minutes, 300, f"{stream_minutes} stream-minutes in game_minute_stats", interval_s=2)
        (late_for_window,) = client.query("SELECT count() FROM late_events WHERE reason = 'late_for_window'").result_rows[0]
        assert (aggregated(), late_for_window) == (stream_minutes, 0)

    sink = status(pipeline)["components"]["sink"]
    assert sink["state"] == "running" and sink["available"]
