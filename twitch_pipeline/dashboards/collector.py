"""Per-stage figures of Flink and the producers, sampled into ClickHouse's ``pipeline_metrics``.

The sink records its own batches (``sink_batches``); Flink and the producers keep no table. So the
dashboard server samples, every few seconds:

* each Flink job (REST ``/jobs/overview``, then ``/jobs/<id>``): the records its Kafka sources emitted as a
  rate, ``numRestarts`` and whether it runs; and its consumer lag (input topics' end offsets minus the
  offsets its consumer group committed at the last checkpoint);
* each topic of :mod:`connectors.catalog` (end offsets summed over partitions): records appended per
  second, and their sum over the producers' raw topics as the ``producer`` stage.

Rates come from two successive readings of a counter, so nothing is written on the first round. Every
source is optional: a stopped Flink or Kafka only means fewer rows, never a failed round.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
import urllib.request
from typing import Any

from connectors import catalog
from twitch_pipeline.settings import Settings

LOG = logging.getLogger("twitch_pipeline.dashboards.collector")
TABLE = "pipeline_metrics"
COLUMNS = ["collected_at", "stage", "metric", "value"]


def _rest(settings: Settings, path: str) -> Any:
    with urllib.request.urlopen(settings.flink_rest + path, timeout=3) as resp:
        return json.loads(resp.read())


def flink_readings(settings: Settings) -> list[tuple[str, str, float]]:
    """(stage, metric, value) of every running job; counters are cumulative (``records_total``)."""
    readings = []
    for job in _rest(settings, "/jobs/overview").get("jobs", []):
        if job.get("state") != "RUNNING":
            continue
        stage, jid = f"flink:{job['name']}", job["jid"]
        detail = _rest(settings, f"/jobs/{jid}")
        # Source vertices are the plan's nodes without inputs: what they emit is what the job read from Kafka.
        fed = {node["id"] for node in detail.get("plan", {}).get("nodes", []) if node.get("inputs")}
        sources = [v for v in detail.get("vertices", []) if v["id"] not in fed]
        read = 0.0
        for vertex in sources:
            # The source operator's own counter: records taken from Kafka (a vertex's write-records counts each
            # record once per downstream edge, and stays 0 when the whole chain ends in a sink).
            base = f"/jobs/{jid}/vertices/{vertex['id']}/subtasks/metrics"
            names = [m["id"] for m in _rest(settings, base) if m["id"].startswith("Source__") and m["id"].endswith(".numRecordsOut")]
            if names:
                read += sum(float(m.get("sum", 0)) for m in _rest(settings, f"{base}?get={','.join(names)}&agg=sum"))
        readings.append((stage, "records_total", read))
        readings.append((stage, "running", 1.0))
        restarts = _rest(settings, f"/jobs/{jid}/metrics?get=numRestarts")
        if restarts:
            readings.append((stage, "restarts", float(restarts[0]["value"])))
    return readings


def _consumer(settings: Settings, group: str):
    from confluent_kafka import Consumer

    from connectors.kafka import client_config

    return Consumer(client_config(settings, **{"group.id": group, "enable.auto.commit": False, "socket.timeout.ms": 2000}))


def _marks(consumer, metadata, topic: str) -> dict[int, tuple[int, int]]:
    from confluent_kafka import TopicPartition

    from connectors.kafka import topic_partitions

    return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=2) for p in topic_partitions(metadata, topic)}


def topic_offsets(settings: Settings) -> dict[str, tuple[int, int]]:
    """Catalog topic -> (first, end) offsets summed over its partitions; topics not on the broker are left out."""
    consumer = _consumer(settings, "twitch-pipeline-dashboards")
    try:
        metadata = consumer.list_topics(timeout=3)
        found: dict[str, tuple[int, int]] = {}
        for topic in catalog.TOPICS:
            if topic.name in metadata.topics:
                marks = _marks(consumer, metadata, topic.name).values()
                found[topic.name] = (sum(low for low, _ in marks), sum(high for _, high in marks))
        return found
    finally:
        consumer.close()


def flink_lag_readings(settings: Settings) -> list[tuple[str, str, float]]:
    """Consumer lag of each streaming job: its input topics' end offsets minus the offsets its Kafka sources
    committed to the job's consumer group at the last checkpoint."""
    from confluent_kafka import TopicPartition

    from flink_jobs.runtime import sql_params

    readings = []
    for job in catalog.streaming_jobs():
        consumer = _consumer(settings, sql_params(settings, job.name, bounded=False)["group_id"])
        try:
            metadata = consumer.list_topics(timeout=3)
            marks = {(t, p): m for t in job.inputs if t in metadata.topics for p, m in _marks(consumer, metadata, t).items()}
            committed = consumer.committed([TopicPartition(t, p) for t, p in marks], timeout=3)
        finally:
            consumer.close()
        if any(c.offset >= 0 for c in committed):  # a job that never committed is not running here
            lag = sum(marks[(c.topic, c.partition)][1] - (c.offset if c.offset >= 0 else marks[(c.topic, c.partition)][0]) for c in committed)
            readings.append((f"flink:{job.name}", "pending_records", float(max(lag, 0))))
    return readings


def topic_readings(settings: Settings) -> list[tuple[str, str, float]]:
    """Records appended to every catalog topic (cumulative end offsets), and the producers' raw topics together."""
    ends = {name: float(high) for name, (_, high) in topic_offsets(settings).items()}
    raw = {t for produced in catalog.PRODUCERS.values() for t in produced if t not in catalog.TERMINAL_TOPICS}
    readings = [(f"topic:{name}", "records_total", end) for name, end in ends.items()]
    readings.append(("producer", "records_total", sum(end for name, end in ends.items() if name in raw)))
    return readings


class Collector:
    """Turns cumulative readings into rows; ``sample`` is one round, ``run`` repeats it until stopped."""

    def __init__(self, settings: Settings, client, every_s: float = 10.0):
        self.settings, self.client, self.every_s = settings, client, every_s
        self._last: dict[str, tuple[float, float]] = {}

    def rows(self, readings: list[tuple[str, str, float]], now: float) -> list[list[Any]]:
        at = dt.datetime.fromtimestamp(now, dt.timezone.utc)
        out = []
        for stage, metric, value in readings:
            if metric != "records_total":
                out.append([at, stage, metric, value])
                continue
            previous = self._last.get(stage)
            self._last[stage] = (now, value)
            # A counter that went down was reset (job resubmitted, topic recreated): wait for the next reading.
            if previous is not None and now > previous[0] and value >= previous[1]:
                out.append([at, stage, "records_per_s", (value - previous[1]) / (now - previous[0])])
        return out

    def sample(self) -> int:
        readings: list[tuple[str, str, float]] = []
        for source in (flink_readings, flink_lag_readings, topic_readings):
            try:
                readings += source(self.settings)
            except Exception as exc:  # noqa: BLE001 - a part that is down only means fewer figures
                LOG.debug("collector: %s unavailable: %s", source.__name__, exc)
        rows = self.rows(readings, time.time())
        if rows:
            self.client.insert(TABLE, rows, column_names=COLUMNS)
        return len(rows)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.sample()
            except Exception as exc:  # noqa: BLE001 - ClickHouse restarting or migrations not applied yet
                LOG.warning("collector: could not write %s: %s", TABLE, str(exc).splitlines()[0] if str(exc) else exc)
            stop.wait(self.every_s)
