"""The DAGs against the real local platform: deploy (local target), backfill, data quality, maintenance.

One platform for the module, started by the main venv's CLI (PyFlink lives there). The deploy DAG's local
target submits the streaming jobs; a bounded synthetic run across midnight flows through them and the sink
into ClickHouse and the lake, and its aggregates are "the streaming result". The backfill must reproduce
them row for row in both stores, replace only the days asked, change nothing when run again, and leave the
previous rows visible when killed half-way. Then data quality passes, catches planted defects, and
maintenance runs clean.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import signal
import subprocess
import time
from typing import Iterator

import pytest

from connectors import catalog
from twitch_pipeline import backfill
from twitch_pipeline.errors import PlatformError, wait_until
from twitch_pipeline.settings import Settings, load_settings, to_env

pytestmark = pytest.mark.integration

#: The synthetic run straddles midnight, so there are two day partitions and a backfill may touch one.
START = dt.datetime(2026, 11, 27, 23, 57, 30, tzinfo=dt.timezone.utc)
DAY1, DAY2 = START.date(), START.date() + dt.timedelta(days=1)
GOLD = [o.name for o in backfill.gold_outputs()]


def cli(settings: Settings, *args: str, timeout_s: float = 900) -> str:
    return backfill.run_cli(settings, *args, timeout_s=timeout_s)


@pytest.fixture(scope="module")
def platform(tmp_path_factory) -> Iterator[Settings]:
    from twitch_pipeline.platform.lifecycle import isolated

    base = isolated(load_settings(environ={}, dotenv=None), tmp_path_factory.mktemp("run"))
    # A long freshness SLO: the synthetic days lie in the past. Checkpoints every 2 s make output visible sooner.
    # 300 channels (about 100 live) make ~12 one-minute polls of 2,500 events: windows on both sides of midnight.
    settings = dataclasses.replace(base, checkpoint_interval_s=2.0, quality_freshness_slo_s=90 * 86400.0, airflow_flink_target="local",
                                   synthetic_channels=300)
    saved = dict(os.environ)
    os.environ.update(to_env(settings))  # what the DAGs' tasks read their settings from
    try:
        cli(settings, "up")
        yield settings
    finally:
        try:
            cli(settings, "down")
        finally:
            os.environ.clear()
            os.environ.update(saved)


def flink_jobs(settings: Settings) -> list[dict]:
    from twitch_pipeline.jobs import list_jobs

    return list_jobs(settings)


#: The jobs the backfill's comparison needs (the deploy DAG's every-job path is tested against the fake Kubernetes API).
STREAM_JOBS = ["enrich_streams", "chat_enrich", *(job.name for job in backfill.SOURCE_JOBS)]


def test_deploy_dag_local_target_runs_the_streaming_jobs(airflow_db, run_dags, platform):
    for _ in range(2):  # the second run finds them running and submits nothing
        run = run_dags["flink_deploy"].test(run_conf={"target": "local", "jobs": ",".join(STREAM_JOBS)})
        assert run.state == "success", [(ti.task_id, ti.state) for ti in run.get_task_instances()]
    names = [j["name"] for j in flink_jobs(platform) if j["state"] == "RUNNING"]
    assert sorted(names) == sorted(STREAM_JOBS)


def comparable(row) -> tuple:
    """A row with its floats to 12 significant digits: a mean of doubles (chat sentiment) depends on the order it was summed in."""
    return tuple(float(f"{v:.12g}") if isinstance(v, float) else v for v in row)


def clickhouse_rows(settings: Settings, table: str, where: str = "1") -> list[tuple]:
    from connectors.clickhouse import clickhouse_client

    key = ", ".join(catalog.output(table).partition_key)
    with clickhouse_client(settings) as client:
        return [comparable(r) for r in client.query(f"SELECT * FROM {table} WHERE {where} ORDER BY {key}").result_rows]


def lake_rows(settings: Settings, table: str) -> list[tuple]:
    from connectors.iceberg import load_catalog

    rows = load_catalog(settings).load_table(f"{settings.iceberg_namespace}.{table}").scan().to_arrow().to_pylist()
    key = catalog.output(table).partition_key
    return [comparable(r.values()) for r in sorted(rows, key=lambda r: tuple(str(r[k]) for k in key))]


def snapshot(settings: Settings) -> dict[str, tuple[list, list]]:
    return {t: (clickhouse_rows(settings, t), lake_rows(settings, t)) for t in GOLD}


@pytest.fixture(scope="module")
def streamed(platform, tmp_path_factory) -> dict[str, tuple[list, list]]:
    """A bounded synthetic run through the streaming jobs and the sink; the streaming result of every gold table."""
    from connectors.clickhouse import clickhouse_client

    log = tmp_path_factory.mktemp("sink") / "sink.log"
    with open(log, "w") as out:
        sink = subprocess.Popen([backfill.pipeline_cli(platform), "sink"], env={**os.environ, **to_env(platform)}, stdout=out, stderr=subprocess.STDOUT)
    summary = log.parent / "summary.json"
    try:
        cli(platform, "produce", "--source", "synthetic", "--events", "2500", "--rate", "0", "--seed", "5", "--start-time", START.isoformat(),
            "--summary", str(summary))
        unique = json.loads(summary.read_text())["game_streams"]["unique"]
        with clickhouse_client(platform) as client:
            def enriched() -> bool:
                return client.query("SELECT count() FROM game_streams_enriched").result_rows[0][0] == unique

            wait_until(enriched, 600, f"{unique} enriched stream snapshots in ClickHouse", interval_s=3)

            def stream_minutes() -> int:
                return client.query("SELECT uniqExact(stream_id, toStartOfMinute(data_retrieved_at)) FROM game_streams_enriched").result_rows[0][0]

            def aggregated() -> bool:
                return stream_minutes() > 0 and client.query("SELECT sum(live_streams) FROM game_minute_stats").result_rows[0][0] == stream_minutes()

            wait_until(aggregated, 600, "the streaming aggregates of every enriched row in ClickHouse", interval_s=3)

            def chat_counted() -> bool:
                silver, counted = client.query("SELECT (SELECT count() FROM chat_silver), (SELECT sum(messages) FROM chat_minute_stats)").result_rows[0]
                return silver > 0 and counted == silver

            wait_until(chat_counted, 600, "every chat_silver message counted in chat_minute_stats", interval_s=3)
            late = client.query("SELECT count() FROM late_events WHERE reason IN ('late_for_window', 'chat_late_for_window')").result_rows[0][0]
            assert late == 0, "a row late for its window would (rightly) be counted by the backfill only"
            for table in ("game_minute_stats", "chat_minute_stats"):
                days = [r[0] for r in client.query(f"SELECT DISTINCT toDate(window_start) FROM {table} ORDER BY 1").result_rows]
                assert days == [DAY1, DAY2], table

        # The Iceberg sinks commit at checkpoints: wait until the lake holds what ClickHouse holds.
        wait_until(lambda: all(len(lake_rows(platform, t)) == len(clickhouse_rows(platform, t)) for t in GOLD), 120, "the gold tables in the lake", interval_s=3)
        for table in ("game_streams_enriched", "chat_silver"):  # what the backfill reads
            wait_until(lambda: len(lake_rows(platform, table)) == len(clickhouse_rows(platform, table)), 120, f"the {table} rows in the lake", interval_s=3)
        yield snapshot(platform)
    finally:
        sink.send_signal(signal.SIGTERM)
        sink.wait(60)


def plant(settings: Settings, day: dt.date) -> None:
    """A row no backfill would write, in the given day's partition of ClickHouse's game_minute_stats.

    Each planted row differs (viewers_sum): the table drops an insert identical to a recent one (insert deduplication).
    """
    from connectors.clickhouse import clickhouse_client

    with clickhouse_client(settings) as client:
        client.command(f"INSERT INTO game_minute_stats (window_start, window_end, game_id, viewers_sum, viewers_avg, viewers_max, live_streams, new_streams) "
                       f"VALUES ('{day} 12:00:00', '{day} 12:01:00', 'planted', {time.time_ns()}, 1, 1, 1, 0)")


def planted(settings: Settings) -> list[dt.date]:
    return sorted(r[0].date() for r in clickhouse_rows(settings, "game_minute_stats", "game_id = 'planted'"))


def test_backfill_dag_equals_the_stream_and_replaces_only_its_day(airflow_db, run_dags, platform, streamed):
    plant(platform, DAY1)
    plant(platform, DAY2)
    began = time.monotonic()
    run = run_dags["aggregates_backfill"].test(logical_date=dt.datetime.combine(DAY1, dt.time(), dt.timezone.utc))
    assert run.state == "success", [(ti.task_id, ti.state) for ti in run.get_task_instances()]
    print(f"backfill DAG, one day: {time.monotonic() - began:.0f} s")
    assert planted(platform) == [DAY2], "the run's day is replaced, the other day is not touched"

    plant_free = {t: ([r for r in ch if "planted" not in r], lake) for t, (ch, lake) in snapshot(platform).items()}
    assert plant_free == streamed

    # The CLI, both days: the same code path; the first day a second time, which changes nothing.
    cli(platform, "backfill", "--from", DAY1.isoformat(), "--to", DAY2.isoformat())
    assert snapshot(platform) == streamed
    assert leftover_staging(platform) == ([], [])


def leftover_staging(settings: Settings) -> tuple[list[str], list[str]]:
    from connectors.clickhouse import clickhouse_client
    from connectors.iceberg import load_catalog

    lake = [n for _, n in load_catalog(settings).list_tables(settings.iceberg_namespace) if n.startswith(backfill.STAGING_PREFIX)]
    with clickhouse_client(settings) as client:
        ch = [r[0] for r in client.query("SELECT name FROM system.tables WHERE database = currentDatabase() AND name LIKE '%backfill%'").result_rows]
    return lake, ch


def test_killed_backfill_leaves_the_previous_rows(platform, streamed):
    plant(platform, DAY1)
    before = snapshot(platform)
    proc = subprocess.Popen([backfill.pipeline_cli(platform), "backfill", "--from", DAY1.isoformat(), "--to", DAY1.isoformat()],
                            env={**os.environ, **to_env(platform)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: any(j["name"].startswith("backfill_aggregates_") and j["state"] == "RUNNING" for j in flink_jobs(platform)), 300,
                   "the backfill job running", interval_s=1)
    finally:
        proc.kill()
        proc.wait()
    assert snapshot(platform) == before and planted(platform) == [DAY1]
    # The orphaned job may still fill its staging tables; what readers see must not change either way.
    for job in flink_jobs(platform):
        if job["name"].startswith("backfill_aggregates_") and job["state"] == "RUNNING":
            try:
                cli(platform, "cancel", job["id"])
            except PlatformError as err:  # it finished between the listing and the cancel (seen: a day's backfill takes seconds)
                assert "no running job" in str(err), err
    assert snapshot(platform) == before

    # The next run of the day drops the killed run's staging and puts the day right.
    cli(platform, "backfill", "--from", DAY1.isoformat(), "--to", DAY1.isoformat())
    assert snapshot(platform) == streamed and leftover_staging(platform) == ([], [])


QUALITY_TABLES = ",".join(["game_streams_enriched", *GOLD])


def quality_run(run_dags, day: dt.date):
    return run_dags["data_quality"].test(logical_date=dt.datetime.combine(day, dt.time(12), dt.timezone.utc), run_conf={"tables": QUALITY_TABLES})


def test_data_quality_passes_on_clean_data_and_catches_planted_defects(airflow_db, run_dags, platform, streamed):
    from connectors.clickhouse import clickhouse_client

    run = quality_run(run_dags, DAY1)
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "success", states

    with clickhouse_client(platform) as client:
        # A duplicated row (unique, reconciliation) and an impossible one (range, relationship to the enriched rows).
        client.command(f"INSERT INTO game_minute_stats SELECT * FROM game_minute_stats WHERE toDate(window_start) = '{DAY1}' LIMIT 1")
        client.command(f"INSERT INTO game_minute_stats (window_start, window_end, game_id, viewers_sum, viewers_avg, viewers_max, live_streams, new_streams) "
                       f"VALUES ('{DAY1} 12:00:00', '{DAY1} 12:01:00', 'no-such-game', -5, 1, 1, 1, {time.time_ns() % 1000})")
    run = quality_run(run_dags, DAY1)
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "failed" and states["verdict"] == "failed" and states["checks"] == states["reconcile"] == "success", states
    with clickhouse_client(platform) as client:
        failing = client.query("SELECT DISTINCT check_name FROM quality_results WHERE status = 'fail' AND table_name = 'game_minute_stats'").result_rows
    failing = {r[0] for r in failing}
    assert any(c.startswith("unique") for c in failing), failing
    assert any("viewers_sum" in c for c in failing), failing
    assert any(c.startswith("reconcile(") for c in failing), failing


def test_maintenance_dag_runs_clean(airflow_db, run_dags, platform, streamed):
    before = snapshot(platform)
    run = run_dags["maintenance"].test()
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "success", states
    assert snapshot(platform) == before, "compaction and expiry change no row"
