"""Bounded runs (backfills, benchmarks) at parallelism 2: a source subtask that ends first keeps its rows.

chat_enrich reads chat_messages with two source subtasks: one partition holds five messages and ends at once,
the other keeps its subtask busy across many checkpoints. Every record must reach lake.chat_bronze and every
message lake.chat_silver. Before bronze had a single writer, the five vanished every time: Iceberg's FlinkSink
committer kept only the last writer's end-of-input files when a checkpoint fell between the two ends.
"""

from __future__ import annotations

import json
from typing import Iterator

import pytest
from confluent_kafka import Producer

from benchmarks.chat import backlog
from connectors.iceberg import load_catalog
from connectors.kafka import client_config, produce_blocking
from connectors.topics import ensure_topics
from twitch_pipeline.jobs import submit
from twitch_pipeline.platform.flink import Flink
from twitch_pipeline.platform.lifecycle import running
from twitch_pipeline.settings import Settings

MESSAGES = 40_000
SHORT = 5  # records in partition 0


@pytest.fixture(scope="module")
def lake_platform(make_settings) -> Iterator[Settings]:
    with running(make_settings(checkpoint_interval_s=0.5), ["kafka", "iceberg", "flink"]) as settings:
        ensure_topics(settings)
        yield settings


def test_bounded_chat_enrich_at_parallelism_2_keeps_the_partition_that_ends_first(lake_platform: Settings) -> None:
    settings = lake_platform
    records = [value for _, value in backlog()[0][:MESSAGES]]
    producer = Producer(client_config(settings, **{"enable.idempotence": True, "linger.ms": 20}))
    for n, value in enumerate(records):
        produce_blocking(producer, "chat_messages", value, partition=0 if n < SHORT else 1)
    assert producer.flush(60) == 0

    job_id = submit(settings, "chat_enrich", ["--bounded", "--conf", "parallelism.default=2"], resume=False)
    assert Flink(settings).rest(f"/jobs/{job_id}")["state"] == "FINISHED"

    catalog = load_catalog(settings)
    bronze = catalog.load_table(f"{settings.iceberg_namespace}.chat_bronze").scan(selected_fields=("kafka_partition", "kafka_offset")).to_arrow()
    positions = sorted(zip(bronze.column("kafka_partition").to_pylist(), bronze.column("kafka_offset").to_pylist()))
    assert positions == [(0, o) for o in range(SHORT)] + [(1, o) for o in range(len(records) - SHORT)]

    silver = catalog.load_table(f"{settings.iceberg_namespace}.chat_silver").scan(selected_fields=("message_id",)).to_arrow()
    ids = silver.column("message_id").to_pylist()
    assert sorted(ids) == sorted({json.loads(v)["message_id"] for v in records})
