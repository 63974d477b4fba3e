"""Outages are waited out: kill -9 the broker for 60 s, then stop ClickHouse for 60 s, during a producing run.

Nothing is restarted by hand except the component that was taken away: the producer keeps its records
queued, the Flink jobs restart from their checkpoints, the sink retries its batch. At the end every unique
stream snapshot is in ClickHouse exactly once (count() without FINAL) and in the Iceberg lake exactly once,
and the services said (once) that they were waiting.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from connectors.clickhouse import clickhouse_client
from twitch_pipeline.chaos import clickhouse_counts, lake_keys
from twitch_pipeline.errors import wait_until
from twitch_pipeline.platform.clickhouse import ClickHouse
from twitch_pipeline.platform.kafka import Kafka
from twitch_pipeline.platform.lifecycle import status
from twitch_pipeline.settings import to_env

OUTAGE_S = 60


def sink_state(settings) -> str:
    return status(settings)["components"]["sink"].get("state", "")


def _outage(seconds: float) -> None:
    """The outage itself: a fixed span of wall time the components must ride out (not synchronisation)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(1)


def test_broker_and_clickhouse_outages_lose_and_duplicate_nothing(pipeline, tmp_path):
    settings = pipeline
    summary_path = tmp_path / "summary.json"
    # ~170 s of paced production, so both outages happen while records are being produced.
    producer = subprocess.Popen(
        [sys.executable, "-m", "twitch_pipeline.cli", "produce", "--source", "synthetic", "--events", "34000", "--rate", "200",
         "--duplicates", "0.1", "--seed", "23", "--summary", str(summary_path)],
        env={**os.environ, **to_env(settings)}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        with clickhouse_client(settings) as client:
            wait_until(lambda: client.query("SELECT count() FROM game_streams_enriched").result_rows[0][0] > 0, 240, "first rows in ClickHouse", interval_s=2)

        kafka = Kafka(settings)
        kafka.processes[0].kill()
        began = time.monotonic()
        wait_until(lambda: sink_state(settings).startswith("waiting for Kafka"), OUTAGE_S, "status to show the sink waiting for Kafka", interval_s=1)
        _outage(OUTAGE_S - (time.monotonic() - began))
        assert producer.poll() is None, f"the producer died during the broker outage: {producer.stderr.read()[-2000:]}"
        kafka.start()
        kafka.wait_healthy()

        clickhouse = ClickHouse(settings)
        clickhouse.stop()
        began = time.monotonic()
        wait_until(lambda: sink_state(settings).startswith("waiting for ClickHouse"), OUTAGE_S, "status to show the sink waiting for ClickHouse", interval_s=1)
        _outage(OUTAGE_S - (time.monotonic() - began))
        clickhouse.start()
        clickhouse.wait_healthy()

        _, err = producer.communicate(timeout=600)
        assert producer.returncode == 0, err[-2000:]
    finally:
        if producer.poll() is None:
            producer.kill()
    unique = json.loads(summary_path.read_text())["game_streams"]["unique"]

    table = "game_streams_enriched"
    wait_until(lambda: clickhouse_counts(settings, (table,))[table] >= unique, 600, f"{unique} unique snapshots in ClickHouse", interval_s=3)
    with clickhouse_client(settings) as client:
        rows, ids = client.query("SELECT count(), uniqExact(event_id) FROM game_streams_enriched").result_rows[0]
        late = client.query("SELECT count() FROM late_events").result_rows[0][0]
    assert (rows, ids) == (unique, unique), f"{rows} rows, {ids} distinct, {unique} sent, {late} late"

    wait_until(lambda: lake_keys(settings, table)[0] >= unique, 120, f"{unique} snapshots in the lake", interval_s=3)
    assert lake_keys(settings, table) == (unique, unique)  # (rows, distinct event ids)

    said = (settings.run_path / "logs" / "sink.log").read_text()
    assert said.count("unavailable, retrying with back-off") <= 6, "the sink must say it waits once per outage, not per attempt"
