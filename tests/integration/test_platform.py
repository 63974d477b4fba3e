"""The local platform with real processes: Kafka, Flink, Iceberg (and ClickHouse) started by `up`."""

from __future__ import annotations

import json
import socket
import tempfile
import urllib.request
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import NewTopic

from connectors.iceberg import load_catalog
from connectors.kafka import admin_client, client_config
from tests.cli import run_cli
from twitch_pipeline.errors import wait_until
from twitch_pipeline.platform.lifecycle import running

SMOKE_JOB = Path(__file__).parent / "jobs" / "topic_to_iceberg.py"


def create_topic(settings, name: str, partitions: int = 2) -> None:
    admin = admin_client(settings)  # keep a reference: a collected client destroys its pending futures
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=30)


def produce(settings, topic: str, rows: list[dict]) -> None:
    producer = Producer(client_config(settings, **{"enable.idempotence": True}))
    for row in rows:
        producer.produce(topic, json.dumps(row).encode(), key=str(row["id"]).encode())
    assert producer.flush(30) == 0


def consume_all(settings, topic: str, expected: int) -> list[dict]:
    consumer = Consumer(client_config(settings, **{"group.id": f"t-{uuid.uuid4()}", "auto.offset.reset": "earliest"}))
    consumer.subscribe([topic])
    seen: list[dict] = []
    try:
        def enough() -> bool:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                seen.append(json.loads(msg.value()))
            return len(seen) >= expected

        wait_until(enough, 60, f"{expected} messages on {topic}", interval_s=0)
    finally:
        consumer.close()
    return seen


def test_status_reports_every_component(platform):
    result = run_cli(platform, "status", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)["components"]
    assert report["kafka"]["bootstrap"] == platform.bootstrap_servers
    assert report["flink"]["rest"] == platform.flink_rest
    assert report["iceberg"]["catalog"] == platform.iceberg_catalog
    assert {"uri", "warehouse"} <= report["iceberg"].keys()
    assert all(report[name]["healthy"] is True for name in ("kafka", "flink", "iceberg", "clickhouse"))
    assert report["clickhouse"]["url"].startswith("http://")
    assert (report["sink"]["state"], report["sink"]["healthy"]) == ("stopped", None), "a service not started is not a failure"


def test_kafka_to_flink_to_iceberg_round_trip(platform):
    topic, table = f"smoke_{uuid.uuid4().hex[:8]}", f"smoke_{uuid.uuid4().hex[:8]}"
    rows = [{"id": i, "name": f"row-{i}"} for i in range(50)]
    create_topic(platform, topic)
    produce(platform, topic, rows)
    assert sorted(consume_all(platform, topic, len(rows)), key=lambda r: r["id"]) == rows

    submitted = run_cli(platform, "submit", str(SMOKE_JOB), "--topic", topic, "--table", table)
    assert submitted.returncode == 0, submitted.stderr

    lake = load_catalog(platform).load_table(f"{platform.iceberg_namespace}.{table}")
    assert sorted(lake.scan().to_arrow().to_pylist(), key=lambda r: r["id"]) == rows
    jobs = run_cli(platform, "jobs", "--json")
    assert any(j["name"] == "topic_to_iceberg" and j["state"] == "FINISHED" for j in json.loads(jobs.stdout))


def test_flink_keeps_its_temporary_files_in_the_run_directory(platform):
    with urllib.request.urlopen(platform.flink_rest + "/taskmanagers", timeout=10) as resp:
        ids = [tm["id"] for tm in json.load(resp)["taskmanagers"]]
    assert ids
    for tm in ids:
        # the working directory (job jars, blobs): ~220 MB a TaskManager, never removed by one that is killed
        assert (platform.run_path / "flink" / "tmp" / f"tm_{tm}" / "blobStorage").is_dir()
        assert not (Path(tempfile.gettempdir()) / f"tm_{tm}").exists()


def test_cancel_unknown_job_is_one_line_error(platform):
    result = run_cli(platform, "cancel", "no-such-job")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "no running job named no-such-job" in result.stderr


def test_restart_keeps_kafka_data_and_up_is_idempotent(make_settings):
    settings = make_settings()
    try:
        assert run_cli(settings, "up").returncode == 0
        create_topic(settings, "survivor", partitions=1)
        produce(settings, "survivor", [{"id": 1, "name": "kept"}])
        again = run_cli(settings, "up")
        assert again.returncode == 0 and again.stdout.count("already running") >= 3
        assert run_cli(settings, "down").returncode == 0
        assert run_cli(settings, "status").returncode == 1
        assert run_cli(settings, "up").returncode == 0
        assert consume_all(settings, "survivor", 1) == [{"id": 1, "name": "kept"}]
    finally:
        run_cli(settings, "down")
    second = run_cli(settings, "down")
    assert second.returncode == 0, second.stderr


def test_taken_port_is_a_one_line_error(make_settings):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        settings = make_settings(kafka_port=squatter.getsockname()[1])
        result = run_cli(settings, "up")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0
    assert "TWITCH_PIPELINE_KAFKA_PORT" in result.stderr
    run_cli(settings, "down")


def test_missing_run_directory_is_a_one_line_error(make_settings, tmp_path):
    settings = make_settings(run_dir=tmp_path / "never-created")
    result = run_cli(settings, "status")
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: no platform in {tmp_path / 'never-created'}: start one with `twitch-pipeline up` (or set TWITCH_PIPELINE_RUN_DIR)"
    assert run_cli(settings, "down").returncode == 0


def test_run_directory_that_is_a_file_is_a_one_line_error(make_settings, tmp_path):
    path = tmp_path / "not-a-dir"
    path.write_text("x")
    result = run_cli(make_settings(run_dir=path), "up")
    assert result.returncode == 2 and "is a file" in result.stderr and "Traceback" not in result.stderr


def test_kafka_formats_storage_whatever_its_random_cluster_id(make_settings, monkeypatch):
    """A cluster id is random base64: one in 64 starts with "-", which must not parse as an option."""
    leading_dash = uuid.UUID(bytes=b"\xfb" + bytes(15))
    monkeypatch.setattr(uuid, "uuid4", lambda: leading_dash)
    with running(make_settings(), ["kafka"]) as settings:
        meta = (settings.run_path / "kafka" / "data" / "meta.properties").read_text()
    assert "cluster.id=-" in meta


def test_a_second_run_directory_uses_the_first_platform_as_external_services(platform, make_settings):
    """With Kafka, Flink and ClickHouse URLs set, `up` starts none of them, `status` checks the external
    ones, and a bounded job submitted from the second run directory runs on the first platform's cluster."""
    second = make_settings(
        kafka_bootstrap=platform.bootstrap_servers, flink_rest_url=platform.flink_rest, clickhouse_url=platform.clickhouse_http_url,
        iceberg_uri=platform.iceberg_catalog_uri, iceberg_warehouse=platform.iceberg_warehouse_uri,
    )
    assert second.run_path != platform.run_path
    try:
        started = run_cli(second, "up")
        assert started.returncode == 0, started.stderr
        started_here = {p.stem for p in (second.run_path / "pids").glob("*.pid")}
        assert not started_here & {"kafka", "flink-jobmanager", "flink-taskmanager", "clickhouse"}, f"external services started locally: {started_here}"
        report = json.loads(run_cli(second, "status", "--json").stdout)["components"]
        assert all(report[name]["healthy"] for name in ("kafka", "flink", "clickhouse", "iceberg")), report
        assert report["kafka"]["bootstrap"] == platform.bootstrap_servers and report["flink"]["rest"] == platform.flink_rest

        topic, table = f"ext_{uuid.uuid4().hex[:8]}", f"ext_{uuid.uuid4().hex[:8]}"
        rows = [{"id": i, "name": f"row-{i}"} for i in range(20)]
        create_topic(second, topic)
        produce(second, topic, rows)
        submitted = run_cli(second, "submit", str(SMOKE_JOB), "--topic", topic, "--table", table)
        assert submitted.returncode == 0, submitted.stderr
        lake = load_catalog(platform).load_table(f"{platform.iceberg_namespace}.{table}")
        assert sorted(lake.scan().to_arrow().to_pylist(), key=lambda r: r["id"]) == rows
        assert any(j["name"] == "topic_to_iceberg" and j["state"] == "FINISHED" for j in json.loads(run_cli(platform, "jobs", "--json").stdout))
    finally:
        stopped = run_cli(second, "down")  # also when an assertion failed: the second run dir's page server must not outlive the test
    assert stopped.returncode == 0, stopped.stderr
    assert Path(platform.run_path / "pids" / "kafka.pid").exists(), "`down` of the second run directory must leave the first platform alone"
