"""The generated Kubernetes manifests: current, derived from the catalog and settings, and valid for the operator."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
from pathlib import Path

from connectors import catalog
from tests.k8s.validate import CRD_DIR, DOCKERFILE, ROOT, schema_errors
from twitch_pipeline import cli
from twitch_pipeline.k8s_manifests import (
    CLUSTER_SETTINGS,
    FLINK_VERSION,
    IMAGE,
    LOCAL_ONLY,
    cluster_settings,
    deployment_name,
    kafka_topics,
    render_flink_deployment,
    settings_configmap,
    stale_files,
)
from twitch_pipeline.settings import FIELDS, Settings, env_name


def test_committed_manifests_are_current():
    stale = [str(p.relative_to(ROOT)) for p in stale_files()]
    assert not stale, f"stale generated manifests {stale}: run `twitch-pipeline k8s render` and commit the result"


def test_render_check_command_passes_on_the_committed_files(capsys):
    assert cli.main(["k8s", "render", "--check"]) == 0


def test_one_topic_resource_per_catalog_topic():
    settings = cluster_settings()
    topics = {t["spec"]["topicName"]: t for t in kafka_topics(settings)}
    assert set(topics) == {t.name for t in catalog.TOPICS}
    for topic in catalog.TOPICS:
        spec = topics[topic.name]["spec"]
        assert spec["partitions"] == (topic.partitions or settings.kafka_partitions)
        assert spec["config"] == {"cleanup.policy": topic.cleanup_policy, "retention.ms": str(topic.retention_ms)}
        assert "_" not in topics[topic.name]["metadata"]["name"]  # DNS-1123 object names


def test_one_flink_deployment_per_streaming_job_running_its_driver():
    settings = cluster_settings()
    for job in catalog.streaming_jobs():
        fd = render_flink_deployment(settings, job, image=IMAGE, namespace="")
        spec = fd["spec"]
        assert fd["metadata"]["name"] == deployment_name(job) and "namespace" not in fd["metadata"]
        assert spec["flinkVersion"] == "v2_0" and spec["job"]["upgradeMode"] == "savepoint"
        assert spec["job"]["entryClass"] == "org.apache.flink.client.python.PythonDriver"
        driver = spec["job"]["args"][spec["job"]["args"].index("-py") + 1]
        assert (ROOT / Path(driver).relative_to("/opt/twitch-pipeline")).is_file(), driver
        conf = spec["flinkConfiguration"]
        assert conf["high-availability.type"] == "kubernetes"
        assert conf["execution.checkpointing.dir"].startswith(CLUSTER_SETTINGS["checkpoint_dir"])
        assert conf["execution.checkpointing.savepoint-dir"].startswith("s3://") and ".." not in conf["execution.checkpointing.savepoint-dir"]
        assert spec["job"]["parallelism"] == settings.flink_parallelism


def test_a_bounded_deployment_is_named_apart_and_finishes():
    settings = dataclasses.replace(cluster_settings(), flink_parallelism=3)
    job = catalog.job("aggregate_streams")
    fd = render_flink_deployment(settings, job, image="registry.example.com/twitch-pipeline:1.2.3", namespace="analytics",
                                 bounded=True, args=("--from", "2026-01-01"))
    assert fd["metadata"] == {**fd["metadata"], "name": "aggregate-streams-backfill", "namespace": "analytics"}
    assert fd["spec"]["job"]["args"][-3:] == ["--bounded", "--from", "2026-01-01"]
    assert fd["spec"]["job"]["upgradeMode"] == "stateless"
    assert fd["spec"]["job"]["parallelism"] == 3 and fd["spec"]["flinkConfiguration"]["taskmanager.numberOfTaskSlots"] == "3"
    # Its own state folders: a backfill never touches the streaming job's checkpoints.
    streaming = render_flink_deployment(settings, job, image=IMAGE, namespace="analytics")
    assert fd["spec"]["flinkConfiguration"]["execution.checkpointing.dir"] != streaming["spec"]["flinkConfiguration"]["execution.checkpointing.dir"]
    if CRD_DIR.is_dir():
        assert schema_errors(fd) == [] and schema_errors(streaming) == []


def test_settings_configmap_holds_every_cluster_setting_and_no_secret():
    data = settings_configmap(cluster_settings(Settings(clickhouse_password="hunter2", twitch_client_secret="s3cret")))["data"]
    for f in FIELDS:
        if f.metadata["secret"] or f.name in LOCAL_ONLY:
            assert env_name(f) not in data, env_name(f)
        else:
            assert env_name(f) in data, env_name(f)
    assert "hunter2" not in data.values() and "s3cret" not in data.values()
    assert data["TWITCH_PIPELINE_KAFKA_BOOTSTRAP"] == CLUSTER_SETTINGS["kafka_bootstrap"]


def test_image_flink_matches_pyflink():
    """The JVM side of the image and the Python side must be the same Flink release."""
    assert importlib.metadata.version("apache-flink") == FLINK_VERSION
    assert f"FROM flink:{FLINK_VERSION}-" in DOCKERFILE.read_text(encoding="utf-8")
    pyflink = Path(importlib.util.find_spec("pyflink").origin).parent
    assert (pyflink / "opt" / f"flink-python-{FLINK_VERSION}.jar").is_file()
