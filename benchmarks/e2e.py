"""End to end: producer → Kafka → Flink (dedup, joins, windows) → Kafka → ClickHouse sink, and Iceberg.

The whole pipeline as `twitch-pipeline start` runs it, on a platform of its own (a temporary run
directory, free ports, default settings): every streaming job of the catalog, the exactly-once sink as
its own process, and the synthetic source as its own process (`twitch-pipeline produce`, 10 % duplicates).

* rate steps: the synthetic world is sized for a target rate (its live streams are polled every second;
  ~RATE_PER_CHANNEL events/s per channel, chat and profiles included) and runs in real time for a warm-up,
  a measured window and a tail; then the pipeline drains. The rate goes up by STEP_FACTOR while every step
  holds, then bisects between the highest rate held and the lowest that failed. A step holds when the
  producer reached 90 % of the target, and neither freshness nor the consumer lag of the jobs and the sink
  grew over the window (benchmarks/_e2e_stats.py).
* freshness (produced → visible in ClickHouse): every ~200 ms one query counts the rows of
  game_streams_enriched per 100 ms of `data_retrieved_at` (the event time the source stamps on a snapshot
  right before producing it); rows that appear between two polls were made visible then. Freshness is
  that moment minus their event time (the bucket's middle), so it includes the producer's own delay and
  is exact to ±0.1 s plus the poll interval.
* per stage: events/s out of each stage over the window: the producer's input topics, each job's Kafka
  outputs (end offsets; they include one transaction marker per partition and checkpoint), rows in the
  ClickHouse tables, rows in the Iceberg table lake.game_streams_enriched.
* CPU seconds and peak RSS per component: each component's process group from /proc (children included:
  the TaskManager's Python workers), sampled every second.
* GlassFlow-shaped: the published GlassFlow Kafka → ClickHouse load test (uuid event_id, user fields,
  10 % duplicates, published as fast as one process can, counted in ClickHouse until the unique total
  appears), mapped onto the stream snapshots path: see docs/benchmarks.md.

Sizes come from BENCH_E2E_* environment variables (defaults keep the run near ten minutes), and the
platform runs at the default settings unless BENCH_E2E_TWITCH_PIPELINE_<NAME> changes one; the result goes
to .run/bench/e2e.json (by `python -m benchmarks`) and to reports/bench.{json,md,svg}.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import resource
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka import Producer as KafkaProducer

from benchmarks import _e2e_report, _e2e_stats
from benchmarks._procfs import group_usage
from benchmarks._scratch import run_dir
from benchmarks.enrich import lake_rows, log_errors
from connectors import catalog
from connectors.clickhouse import clickhouse_client
from connectors.kafka import client_config
from connectors.migrations import apply_migrations
from connectors.topics import ensure_topics
from flink_jobs.runtime import sql_params
from producers.contracts import iso_ms
from producers.heartbeat import emit_heartbeats
from producers.publisher import EVENT_TOPICS
from producers.run import RunOptions, make_publisher
from twitch_pipeline.errors import PlatformError, wait_until
from twitch_pipeline.jobs import start_all
from twitch_pipeline.platform.lifecycle import isolated, running, start_services, stop_services
from twitch_pipeline.platform.process import ManagedProcess
from twitch_pipeline.platform.supervisor import Supervisor, lake_chores
from twitch_pipeline.settings import Settings, load_settings, to_env
from twitch_pipeline.timestamps import parse_iso_ms


def _env(name: str, default: float) -> float:
    value = os.environ.get(f"BENCH_E2E_{name}")
    try:
        return float(value) if value else default
    except ValueError:
        raise ValueError(f"BENCH_E2E_{name}={value!r} is not a number") from None


START_RATE = _env("START_RATE", 1000)  # events/s of the first step, duplicates included
STEP_FACTOR = _env("STEP_FACTOR", 2.0)
MAX_STEPS = int(_env("MAX_STEPS", 4))
WARMUP_S = _env("WARMUP_S", 15)  # world start-up (every live channel's profile), JIT, first checkpoints
MEASURE_S = _env("MEASURE_S", 40)
TAIL_S = _env("TAIL_S", 10)  # the source keeps going so the window's last events pass the event-time operators
#: The lag's lower envelope takes each group's low point per this many seconds: eight samples (one a second), longer
#: than a checkpoint and its commit take at the ceiling (2-3.6 s), five blocks in the measured window.
LAG_BLOCK_S = 8.0
DRAIN_S = _env("DRAIN_S", 180)  # a step that fell behind gets this long to catch up before the next
GLASSFLOW_RECORDS = int(_env("GLASSFLOW_RECORDS", 300_000))
REPORT_DIR = Path(os.environ.get("BENCH_E2E_REPORT_DIR", "reports"))

DUPLICATES = 0.10
POLL_INTERVAL_S = 1.0
# Events/s the synthetic world sends per channel when its live streams are polled every second: ~0.345 valid
# events (a third of the channels live, their chat and profiles; measured with producers.synthetic.World),
# plus the 10 % duplicate slots.
RATE_PER_CHANNEL = 0.345 / (1 - DUPLICATES)
FRESHNESS_POLL_S = 0.2
BUCKET_MS = 100
TABLE = "game_streams_enriched"
QUANTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}


# ------------------------------------------------------------------------------------------- watchers
#: Rows of TABLE per BUCKET_MS of event time, counted as they are inserted (a materialized view the benchmark adds to
#: its own platform). The watcher polls this small table five times a second: 6-25 ms a poll. Counting TABLE itself
#: read every row of it at each poll (ORDER BY event_id: no index serves a time range), 42 ms of CPU per poll at 3M
#: rows on a chDB server alone; in the full runs ClickHouse's CPU did not fall with it (session 13, benchmarks.md).
COUNTS_TABLE = "bench_freshness_counts"


def create_freshness_counts(settings: Settings) -> None:
    with clickhouse_client(settings) as client:
        client.command(f"CREATE TABLE IF NOT EXISTS {COUNTS_TABLE} (b Int64, rows UInt64) ENGINE = SummingMergeTree ORDER BY b")
        client.command(f"CREATE MATERIALIZED VIEW IF NOT EXISTS {COUNTS_TABLE}_mv TO {COUNTS_TABLE} AS "
                       f"SELECT intDiv(toUnixTimestamp64Milli(data_retrieved_at), {BUCKET_MS}) AS b, count() AS rows FROM {TABLE} GROUP BY b")


def counted_since(client, since_ms: int) -> list[tuple[int, int]]:
    """(bucket, rows of TABLE in it so far) for the buckets from ``since_ms`` on."""
    return client.query(f"SELECT b, sum(rows) FROM {COUNTS_TABLE} WHERE b >= {{b:Int64}} GROUP BY b",
                        parameters={"b": since_ms // BUCKET_MS}).result_rows


class Freshness:
    """Polls ClickHouse: when rows of TABLE per BUCKET_MS of event time first show up."""

    def __init__(self, settings: Settings):
        self.client = clickhouse_client(settings)
        self.lock = threading.Lock()
        self.since_ms = int(time.time() * 1000)
        self.counts: dict[int, int] = {}
        self.appearances: list[tuple[float, float, int]] = []  # (visible at s, event time s, rows)
        self.last_new = time.time()
        self.queries: list[tuple[float, float]] = []  # (asked at s, took s)
        self.errors = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def reset(self, since_ms: int) -> None:
        with self.lock:
            self.since_ms, self.counts, self.appearances = since_ms, {}, []

    def _run(self) -> None:
        while not self.stopping.wait(FRESHNESS_POLL_S):
            since = self.since_ms
            asked = time.time()
            try:
                rows = counted_since(self.client, since)
            except Exception:  # noqa: BLE001 - a poll that fails on a busy machine costs resolution, not the run
                self.errors += 1
                continue
            self.queries.append((asked, time.time() - asked))
            with self.lock:
                if since != self.since_ms:
                    continue  # reset meanwhile
                for bucket, count in rows:
                    new = count - self.counts.get(bucket, 0)
                    if new > 0:
                        self.counts[bucket] = count
                        self.appearances.append((asked, (bucket * BUCKET_MS + BUCKET_MS / 2) / 1000, new))
                        self.last_new = asked

    def window(self, start_s: float, end_s: float) -> list[tuple[float, float, int]]:
        with self.lock:
            return [a for a in self.appearances if start_s <= a[1] < end_s]

    def query_ms(self, start_s: float, end_s: float) -> int | None:
        """The median time one poll took in the window (the observer's own cost, and how loaded ClickHouse was)."""
        took = sorted(t for at, t in self.queries if start_s <= at < end_s)
        return round(took[len(took) // 2] * 1000) if took else None

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(10)


class Processes:
    """CPU seconds and peak RSS of each component's process group, sampled every second."""

    def __init__(self, procs: dict[str, ManagedProcess]):
        self.procs = procs
        self.cpu: dict[str, float] = {}
        self.peak_rss: dict[str, float] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            self.sample()
            if self.stopping.wait(1.0):
                return

    def sample(self) -> None:
        readings = {}
        for name, proc in self.procs.items():
            pid = proc.pid()
            if pid is not None:
                readings[name] = group_usage(pid)  # the pid of a managed process is its group's id
        own = resource.getrusage(resource.RUSAGE_SELF)
        with self.lock:
            for name, usage in readings.items():
                self.cpu[name] = usage.cpu_s
                self.peak_rss[name] = max(self.peak_rss.get(name, 0.0), usage.rss_mb)
            self.cpu["benchmark"] = own.ru_utime + own.ru_stime
            self.peak_rss["benchmark"] = own.ru_maxrss / 1024

    def cpu_now(self) -> dict[str, float]:
        self.sample()
        with self.lock:
            return dict(self.cpu)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(10)


class Lag:
    """Consumer lag (end offset - committed offset, summed) of every streaming job's group and of the sink."""

    def __init__(self, settings: Settings):
        self.groups: dict[str, tuple[Consumer, list[TopicPartition]]] = {}
        readers = {job.name: (sql_params(settings, job.name, bounded=False)["group_id"], job.inputs) for job in catalog.streaming_jobs()}
        readers["sink"] = (settings.sink_group, catalog.CONSUMERS["clickhouse_sink"])
        for name, (group, topics) in readers.items():
            # never subscribes; read_committed, so the end offsets are the last stable ones (Flink's open transactions excluded)
            consumer = Consumer(client_config(settings, **{"group.id": group, "enable.auto.commit": False, "isolation.level": "read_committed"}))
            meta = consumer.list_topics(timeout=10).topics
            self.groups[name] = (consumer, [TopicPartition(t, p) for t in topics if t in meta for p in sorted(meta[t].partitions)])
        self.samples: list[tuple[float, dict[str, int | None]]] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def read(self) -> dict[str, int | None]:
        """Per group, its lag; None while it has not committed every partition (Flink commits at checkpoints)."""
        out: dict[str, int | None] = {}
        for name, (consumer, partitions) in self.groups.items():
            committed = consumer.committed(partitions, timeout=10)
            lag = 0
            for tp in committed:
                high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10)[1]
                if tp.offset >= 0:
                    lag += max(0, high - tp.offset)
                elif high > 0:  # records but no commit yet (an empty partition needs none)
                    lag = None
                    break
            out[name] = lag
        return out

    def _run(self) -> None:
        while not self.stopping.wait(1.0):
            try:
                reading = self.read()
            except Exception:  # noqa: BLE001 - one missed sample on a busy broker
                continue
            with self.lock:
                self.samples.append((time.time(), reading))

    def total_series(self, start_s: float, end_s: float) -> list[tuple[float, float]]:
        """(time, lag summed over the groups that have committed) within the window."""
        with self.lock:
            return [(t, float(sum(v for v in r.values() if v is not None))) for t, r in self.samples if start_s <= t < end_s]

    def floor_series(self, start_s: float, end_s: float) -> list[tuple[float, float]]:
        """The lag's lower envelope within the window (``_e2e_stats.lag_floor``), in blocks of LAG_BLOCK_S from its start."""
        with self.lock:
            window = [(t - start_s, r) for t, r in self.samples if start_s <= t < end_s]
        return [(start_s + t, lag) for t, lag in _e2e_stats.lag_floor(window, LAG_BLOCK_S)]

    def latest(self) -> dict[str, int | None]:
        with self.lock:
            return dict(self.samples[-1][1]) if self.samples else {}

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(15)
        for consumer, _ in self.groups.values():
            consumer.close()


# ------------------------------------------------------------------------------------------- stages
def _stage_topics() -> dict[str, tuple[str, ...]]:
    """Each stage and the Kafka topics its output is counted in: the producer's input topics, and per job the
    outputs only it writes (late_events and dead_letter are shared, and nearly empty in a normal run)."""
    stages = {"producer → Kafka": EVENT_TOPICS}
    for job in catalog.streaming_jobs():
        stages[f"{job.name} → Kafka"] = tuple(t for t in job.outputs if catalog.writers(t) == [job.name])
    return stages


def _end_offsets(consumer: Consumer, topics: tuple[str, ...]) -> int:
    meta = consumer.list_topics(timeout=10).topics
    return sum(consumer.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1] for t in topics if t in meta for p in meta[t].partitions)


def stage_counts(settings: Settings, consumer: Consumer) -> dict[str, int]:
    counts = {stage: _end_offsets(consumer, topics) for stage, topics in _stage_topics().items()}
    with clickhouse_client(settings) as client:
        counts["sink → ClickHouse (all tables)"] = sum(client.query(f"SELECT count() FROM {o.name}").result_rows[0][0] for o in catalog.sink_outputs())
        counts[f"ClickHouse {TABLE}"] = client.query(f"SELECT count() FROM {TABLE}").result_rows[0][0]
    counts[f"Iceberg lake.{TABLE}"] = lake_rows(settings)
    return counts


# Per late reason of a dedup stage: the output its late rows are checked against (a late row whose first copy is there
# lost nothing), the id column (the same field in its input records), and its input topic, where the others are traced.
LATE_COPY_OF = {"late": (TABLE, "event_id", "game_streams"), "chat_late_for_dedup": ("chat_silver", "message_id", "chat_messages")}


def late_events(settings: Settings, since_ms: int) -> dict[str, dict[str, Any]]:
    """What the jobs classed late since ``since_ms``, by reason, and for the dedup stages how many of those rows are
    copies of a record whose first copy is in ClickHouse (a duplicate that came late loses nothing; a unique one would)."""
    # First copies are looked for in the whole table (a benchmark's minutes of rows), not from a minute before the
    # step: a copy can be of a record stamped earlier.
    late: dict[str, dict[str, Any]] = {}
    with clickhouse_client(settings) as client:
        since = {"s": since_ms}
        for reason, rows in client.query("SELECT reason, count() FROM late_events WHERE detected_at >= fromUnixTimestamp64Milli({s:Int64}) "
                                         "GROUP BY reason ORDER BY reason", parameters=since).result_rows:
            late[reason] = {"rows": rows}
            if reason in LATE_COPY_OF:
                table, key, _ = LATE_COPY_OF[reason]
                visible = client.query(
                    f"SELECT countIf(event_id IN (SELECT {key} FROM {table})) FROM late_events "
                    f"WHERE reason = {{r:String}} AND detected_at >= fromUnixTimestamp64Milli({{s:Int64}})",
                    parameters=since | {"r": reason}).result_rows[0][0]
                late[reason]["first_copy_visible"] = visible
                if visible < rows:
                    late[reason]["without_first_copy"] = _unexplained_late(settings, client, reason, since_ms)
    return late


def _unexplained_late(settings: Settings, client, reason: str, since_ms: int, limit: int = 10) -> list[dict[str, Any]]:
    """Up to ``limit`` late rows whose id is in no output, each traced in its input topic: every copy's partition and
    offset, and how far event time had gone on that partition before it (``partition_ahead_ms``: more than the
    lateness means the partition itself was out of order; less means the watermark came from elsewhere)."""
    table, key, topic = LATE_COPY_OF[reason]
    rows = client.query(
        f"SELECT event_id, toUnixTimestamp64Milli(data_retrieved_at), toUnixTimestamp64Milli(detected_at) FROM late_events "
        f"WHERE reason = {{r:String}} AND detected_at >= fromUnixTimestamp64Milli({{s:Int64}}) AND event_id NOT IN (SELECT {key} FROM {table}) "
        f"ORDER BY detected_at LIMIT {limit}", parameters={"r": reason, "s": since_ms}).result_rows
    examples = {row[0]: {"id": row[0], "event_time": iso_ms(row[1]), "detected_after_ms": row[2] - row[1], "copies": []} for row in rows}
    reached: dict[int, int] = {}  # per partition, the latest event time so far
    for partition, offset, kafka_ms, value, event_ms in _topic_records(settings, topic, since_ms - 60_000):
        ahead = reached.get(partition)
        if value is not None and isinstance(value.get(key), str) and value[key] in examples:
            examples[value[key]]["copies"].append({"partition": partition, "offset": offset, "kafka_time_minus_event_ms": kafka_ms - event_ms,
                                                     "partition_ahead_ms": ahead - event_ms if ahead is not None else None})
        if event_ms is not None:
            reached[partition] = max(ahead or event_ms, event_ms)
    return list(examples.values())


def producer_delay_ms(settings: Settings, t0: float, t1: float) -> dict[str, int]:
    """How long after its ``data_retrieved_at`` each stream snapshot of the window reached Kafka (its CreateTime, set
    when the producer hands it over), p50/p95/p99. Part of the freshness figures: the synthetic source stamps each page
    of a poll with one time and sends it when that time comes, and a busy producer falls behind it. First copies only:
    a duplicate is a re-send of one of the last 512 records."""
    seen: set[str] = set()
    delays = []
    for _, _, kafka_ms, value, event_ms in _topic_records(settings, "game_streams", int(t0 * 1000), int(t1 * 1000)):
        if event_ms is not None and isinstance(value.get("event_id"), str) and value["event_id"] not in seen:
            seen.add(value["event_id"])
            delays.append(kafka_ms - event_ms)
    return _quantiles([(d, 1) for d in delays])


def _topic_records(settings: Settings, topic: str, since_ms: int, until_ms: int | None = None):
    """The records of ``topic`` produced from ``since_ms`` (to ``until_ms``), partition by partition in offset order:
    (partition, offset, Kafka timestamp, the parsed record or None, its event time or None)."""
    import orjson

    consumer = Consumer(client_config(settings, **{"group.id": "bench-e2e-trace", "enable.auto.commit": False}))
    try:
        parts = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        starts = consumer.offsets_for_times([TopicPartition(topic, p, since_ms) for p in parts], timeout=10)
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        for tp in starts:
            if tp.offset < 0 or tp.offset >= ends[tp.partition]:
                continue
            consumer.assign([tp])
            done = False
            while not done and (batch := consumer.consume(num_messages=10_000, timeout=5.0)):
                for msg in batch:
                    if msg.error():
                        continue
                    kafka_ms = msg.timestamp()[1]
                    done = until_ms is not None and kafka_ms > until_ms
                    if done:
                        break
                    try:
                        value = orjson.loads(msg.value())
                        event_ms = parse_iso_ms(value.get("sent_at") or value["data_retrieved_at"])
                    except Exception:  # noqa: BLE001 - a malformed record moves no watermark
                        value, event_ms = None, None
                    yield msg.partition(), msg.offset(), kafka_ms, value, event_ms
                    done = msg.offset() + 1 >= ends[tp.partition]
                    if done:
                        break
    finally:
        consumer.close()


def _percentiles_ms(appearances: list[tuple[float, float, int]]) -> dict[str, float]:
    return _quantiles([((visible - at) * 1000, rows) for visible, at, rows in appearances])


def _quantiles(values: list[tuple[float, int]]) -> dict[str, float]:
    """QUANTILES of (value, weight) pairs, rounded."""
    by_q = _e2e_stats.weighted_percentiles(values, tuple(QUANTILES.values()))
    return {name: round(by_q[q]) for name, q in QUANTILES.items() if q in by_q}


def _load() -> list[float]:
    return [round(x, 1) for x in os.getloadavg()]


# ------------------------------------------------------------------------------------------- rate steps
@dataclasses.dataclass
class Platform:
    settings: Settings
    freshness: Freshness
    processes: Processes
    lag: Lag
    offsets: Consumer
    producer: ManagedProcess
    echo: Callable[[str], None]
    # Heartbeats while no producer runs (between steps), as a live source idles: the last second a step's producer
    # sent sits in an open dedup window until event time passes it. Without them a late copy of a record from that
    # second was counted as a late row with no first copy (1-6 per step until session 13), and its first copy came
    # out during the next step.
    idle: KafkaProducer

    def idle_heartbeats(self) -> None:
        """Heartbeats at the wall clock on every input partition: the next step's producer starts later than now."""
        emit_heartbeats(self.idle, EVENT_TOPICS, int(time.time() * 1000))
        self.idle.poll(0)


def rate_step(p: Platform, target: float, seed: int) -> dict[str, Any]:
    channels = max(30, round(target / RATE_PER_CHANNEL))
    world = dataclasses.replace(p.settings, synthetic_channels=channels, twitch_poll_interval_s=POLL_INTERVAL_S, synthetic_rate=0.0)
    load_start = _load()
    began = time.time()
    p.freshness.reset(int(began * 1000))
    p.producer.spawn([sys.executable, "-m", "twitch_pipeline.cli", "produce", "--source", "synthetic", "--duplicates", str(DUPLICATES),
                      "--seed", str(seed)], env=to_env(world))
    time.sleep(WARMUP_S)  # the measurement schedule itself, not a wait for a result
    t0, counts0, cpu0 = time.time(), stage_counts(p.settings, p.offsets), p.processes.cpu_now()
    time.sleep(max(0.0, t0 + MEASURE_S - time.time()))
    t1, counts1, cpu1 = time.time(), stage_counts(p.settings, p.offsets), p.processes.cpu_now()
    time.sleep(TAIL_S)
    p.producer.stop(p.settings.stop_timeout_s)
    stopped = time.time()
    drained = _drain(p)
    late = late_events(p.settings, int(began * 1000))
    delay = producer_delay_ms(p.settings, t0, t1)
    window = t1 - t0
    rates = {stage: round((counts1[stage] - counts0[stage]) / window) for stage in counts0}
    appearances = p.freshness.window(t0, t1)
    # one bucket per heartbeat interval: the quiet topics' heartbeats release the joins in a saw-tooth of that period
    freshness_slope = _e2e_stats.slope(_e2e_stats.freshness_trend(appearances, bucket_s=max(1.0, p.settings.heartbeat_interval_s)))
    lag_slope = _e2e_stats.slope(p.lag.floor_series(t0, t1))
    achieved = rates["producer → Kafka"]
    verdict = _e2e_stats.verdict(target, achieved, freshness_slope, lag_slope, drained is not None)
    cpu = {name: round(cpu1[name] - cpu0.get(name, cpu1[name]), 1) for name in cpu1}
    result = {
        "target_events_per_s": round(target),
        "synthetic_channels": channels,
        "achieved_events_per_s": achieved,
        "held": verdict.held,
        "why_not_held": list(verdict.reasons),
        "stage_events_per_s": rates,
        "freshness_ms": _percentiles_ms(appearances),
        "freshness_max_ms": round(max(((v - a) * 1000 for v, a, _ in appearances), default=0)),
        "producer_delay_ms": delay,
        "freshness_query_ms": p.freshness.query_ms(t0, t1),
        "freshness_slope_s_per_s": round(freshness_slope, 3),
        "rows_measured": sum(n for *_, n in appearances),
        "consumer_lag_slope_per_s": round(lag_slope),
        # the slope of every sample, as the verdict used until session 10: the checkpoints' saw-tooth moves it
        "consumer_lag_slope_all_samples_per_s": round(_e2e_stats.slope(p.lag.total_series(t0, t1))),
        "consumer_lag_at_window_end": _lag_at(p.lag, t1),
        "drain_s_after_source_stopped": round(drained - stopped, 1) if drained is not None else None,
        "late_events": late,
        "window_s": round(window, 1),
        "cpu_s": cpu,
        "cores_used": {name: round(value / window, 2) for name, value in cpu.items()},
        "events_per_pipeline_cpu_s": _e2e_stats.events_per_cpu_s(achieved * window, cpu),
        "load_average_1_5_15_at_start": load_start,
        "load_average_1_5_15_at_end": _load(),
    }
    p.echo(f"  step {target:,.0f}/s: achieved {achieved:,}/s, held={verdict.held} {'; '.join(verdict.reasons)}; "
           f"freshness {result['freshness_ms']}, load {result['load_average_1_5_15_at_end']}")
    return result


def _lag_at(lag: Lag, at: float) -> dict[str, int | None]:
    with lag.lock:
        before = [r for t, r in lag.samples if t <= at]
    return before[-1] if before else {}


def _drain(p: Platform) -> float | None:
    """Wait until every group has read what was written and no new rows showed for a few seconds; when, or None."""
    partitions = sum(len(parts) for _, parts in p.lag.groups.values())

    def drained() -> bool:
        p.idle_heartbeats()
        reading = p.lag.read()
        caught_up = all(v is None or v <= 2 * partitions for v in reading.values())  # transaction markers stay behind
        return caught_up and time.time() - p.freshness.last_new > 3
    try:
        wait_until(drained, DRAIN_S, "pipeline drained", interval_s=1)
    except PlatformError:  # a step that cannot drain is reported as such
        return None
    return time.time()


# ------------------------------------------------------------------------------------------- GlassFlow-shaped run
def glassflow_event(rng: random.Random, now_ms: int) -> dict[str, Any]:
    """GlassFlow's load-test record (event_id and user_id uuid4, name, email, created_at) as a stream snapshot.

    event_id → event_id (uuid4 as 32 hex digits, the contract's form); user_id → user_id and stream_id;
    name → user_login and user_name; email → title; created_at → data_retrieved_at and started_at (now,
    in ms). The fields GlassFlow's record lacks get constants; no profile or game is published for them, so
    the temporal joins run and find nothing (a LEFT JOIN keeps the row).
    """
    user = uuid.UUID(int=rng.getrandbits(128), version=4)
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    created = iso_ms(now_ms)
    return {"event_id": uuid.UUID(int=rng.getrandbits(128), version=4).hex, "stream_id": str(user), "user_id": str(user),
            "user_login": f"{first}_{last}".lower(), "user_name": f"{first} {last}", "game_id": "0", "game_name": "", "stream_type": "live",
            "title": f"{first}.{last}{rng.randrange(100)}@example.com".lower(), "viewer_count": 0, "started_at": created, "language": "en",
            "is_mature": False, "tags": [], "data_retrieved_at": created}


_FIRST = ("Anna", "Ben", "Chloe", "David", "Emma", "Felix", "Grace", "Hugo", "Ines", "Jonas", "Kira", "Liam", "Mia", "Noah", "Olga", "Paul")
_LAST = ("Smith", "Garcia", "Müller", "Rossi", "Dubois", "Kowalski", "Silva", "Jensen", "Novak", "Tanaka", "Okafor", "Larsen")


def glassflow_run(p: Platform, records: int, seed: int = 42) -> dict[str, Any]:
    """``records`` sends (10 % duplicates) into game_streams from one process, as fast as it goes; then count
    the unique total in ClickHouse (count() without FINAL), sending heartbeats meanwhile as a live source does."""
    settings = p.settings
    load_start = _load()
    started_ms = int(time.time() * 1000)
    p.freshness.reset(started_ms)
    cpu0 = p.processes.cpu_now()
    publisher = make_publisher(settings, RunOptions(events=records, duplicates=DUPLICATES, seed=seed))
    rng = random.Random(seed)
    first_sent = time.time()
    next_heartbeat = first_sent + settings.heartbeat_interval_s
    sent = 0
    while True:
        now_ms = int(time.time() * 1000)
        if not publisher.publish("game_streams", glassflow_event(rng, now_ms), now_ms):
            break
        sent += 1
        if sent % 512 == 0:
            publisher.poll()
            if time.time() >= next_heartbeat:
                publisher.heartbeats(now_ms)
                next_heartbeat = time.time() + settings.heartbeat_interval_s
    undelivered = publisher.flush()
    last_sent = time.time()
    stats = publisher.summary()["game_streams"]
    unique = stats["unique"]
    found = 0

    def complete() -> bool:
        nonlocal found
        publisher.heartbeats(int(time.time() * 1000))  # a live source's heartbeats: the event-time operators release the tail
        publisher.poll()
        with clickhouse_client(settings) as client:
            found = sum(rows for _, rows in counted_since(client, started_ms))
        return found >= unique

    deadline = max(300.0, records / 500)
    try:
        wait_until(complete, deadline, "the unique total in ClickHouse", interval_s=0.2)
        all_visible = time.time()
    except PlatformError:  # reported with what was found
        all_visible = None
    publisher.flush()
    cpu1 = p.processes.cpu_now()
    cpu = {name: round(cpu1[name] - cpu0.get(name, cpu1[name]), 1) for name in cpu1}
    with clickhouse_client(settings) as client:
        # the verdict counts the table itself, without FINAL, as GlassFlow's test does
        found = client.query(f"SELECT count() FROM {TABLE} WHERE data_retrieved_at >= fromUnixTimestamp64Milli({{s:Int64}})",
                             parameters={"s": started_ms}).result_rows[0][0]
        late = client.query("SELECT count() FROM late_events WHERE data_retrieved_at >= fromUnixTimestamp64Milli({s:Int64})",
                            parameters={"s": started_ms}).result_rows[0][0]
    appearances = p.freshness.window(started_ms / 1000, time.time())
    publish_s = last_sent - first_sent
    total_s = (all_visible or time.time()) - first_sent
    result = {
        "records": stats["sent"],
        "unique": unique,
        "duplicates": stats["duplicates"],
        "publishers": 1,
        "undelivered": undelivered,
        "source_events_per_s": round(stats["sent"] / publish_s),
        "pipeline_events_per_s": round(stats["sent"] / total_s) if all_visible else None,
        "pipeline_unique_per_s": round(unique / total_s) if all_visible else None,
        "lag_s": round(all_visible - last_sent, 1) if all_visible else None,
        "found_in_clickhouse": found,
        "exactly_unique_total": found == unique,
        "late_events": late,
        "freshness_ms": _percentiles_ms(appearances),
        "cpu_s": cpu,
        "events_per_pipeline_cpu_s": _e2e_stats.events_per_cpu_s(stats["sent"], cpu),
        "load_average_1_5_15_at_start": load_start,
        "load_average_1_5_15_at_end": _load(),
    }
    p.echo(f"  glassflow-shaped: {result['records']:,} records at {result['source_events_per_s']:,}/s into Kafka, "
           f"pipeline {result['pipeline_events_per_s']}/s, lag {result['lag_s']} s, exact {result['exactly_unique_total']}")
    return result


# ------------------------------------------------------------------------------------------- run
def _settings_used(settings: Settings) -> dict[str, Any]:
    knobs = ("kafka_partitions", "flink_parallelism", "flink_task_slots", "flink_taskmanager_memory", "flink_jobmanager_memory",
             "kafka_heap", "checkpoint_interval_s", "watermark_lateness_s", "heartbeat_interval_s", "sink_batch_rows",
             "sink_batch_max_wait_s", "producer_compression", "producer_linger_ms", "producer_validate")
    return {k: getattr(settings, k) for k in knobs} | {
        "changed_from_defaults": sorted(f"{name.removeprefix('BENCH_E2E_')}={value}" for name, value in os.environ.items()
                                        if name.startswith("BENCH_E2E_TWITCH_PIPELINE_")),
        "jobs": [j.name for j in catalog.streaming_jobs()], "duplicates": DUPLICATES, "synthetic_poll_interval_s": POLL_INTERVAL_S,
        "start_rate": START_RATE, "step_factor": STEP_FACTOR, "max_steps": MAX_STEPS, "warmup_s": WARMUP_S, "measure_s": MEASURE_S,
        "tail_s": TAIL_S, "drain_s": DRAIN_S, "glassflow_records": GLASSFLOW_RECORDS, "freshness_poll_s": FRESHNESS_POLL_S,
        "freshness_bucket_ms": BUCKET_MS,
    }


def run(settings: Settings, echo: Callable[[str], None] = print) -> dict[str, Any]:
    machine = {"cores": os.cpu_count(), "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
               "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "load_average_1_5_15_at_start": _load()}
    began = time.monotonic()
    run_dir = settings.run_path
    procs = {"kafka": ManagedProcess("kafka", run_dir), "flink_jobmanager": ManagedProcess("flink-jobmanager", run_dir),
             "flink_taskmanager": ManagedProcess("flink-taskmanager", run_dir), "clickhouse_server": ManagedProcess("clickhouse", run_dir),
             "sink": ManagedProcess("sink", run_dir), "producer": ManagedProcess("producer", run_dir)}
    processes = Processes(procs)
    with running(settings, ["kafka", "iceberg", "clickhouse", "flink"]):
        try:
            apply_migrations(settings)
            create_freshness_counts(settings)
            ensure_topics(settings)
            submit_began = time.monotonic()
            start_all(settings, echo=lambda line: echo(" " + line))
            submit_s = time.monotonic() - submit_began
            start_services(settings, echo=lambda line: echo(" " + line), only=["sink"])
            # The lake's snapshot expiry, as `make run`'s supervisor runs it: without it every commit's metadata grows.
            chores, stop_chores = Supervisor([], chores=lake_chores(settings), concurrent=True, echo=lambda line: echo(" " + line)), threading.Event()
            threading.Thread(target=chores.run, args=(stop_chores,), name="lake-chores", daemon=True).start()
            offsets = Consumer(client_config(settings, **{"group.id": "bench-e2e-offsets"}))
            idle = KafkaProducer(client_config(settings))
            p = Platform(settings, Freshness(settings), processes, Lag(settings), offsets, procs["producer"], echo, idle)
            steps: list[dict[str, Any]] = []
            try:
                # A fresh TaskManager's first minute is its slowest (class loading, JIT): one unmeasured step at half
                # the first rate, so that the first measured step is not judged on start-up.
                echo(" warm-up step (not counted):")
                warm_up = rate_step(p, START_RATE / 2, seed=99)
                seed = 100
                while (target := _e2e_stats.next_rate([(s["target_events_per_s"], s["held"]) for s in steps], START_RATE, STEP_FACTOR, MAX_STEPS)):
                    seed += 1
                    steps.append(rate_step(p, target, seed))
                glassflow = glassflow_run(p, GLASSFLOW_RECORDS) if GLASSFLOW_RECORDS else None
                lake_total = lake_rows(settings)
            finally:
                stop_chores.set()
                p.freshness.close()
                p.lag.close()
                offsets.close()
                idle.flush(10)
        finally:
            stop_services(settings, echo=lambda _: None)
            processes.close()
    machine |= {"finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "load_average_1_5_15_at_end": _load()}
    best = _e2e_stats.highest_held(steps)
    basis = f"the highest step held ({best['target_events_per_s']:,}/s target)" if best else "no step held: the lowest rate tried"
    best = best or min(steps, key=lambda s: s["achieved_events_per_s"], default=None)
    return {
        "end_to_end_events_per_s": best["achieved_events_per_s"] if best else None,
        "end_to_end_unique_rows_per_s": best["stage_events_per_s"][f"ClickHouse {TABLE}"] if best else None,
        "freshness_ms": best["freshness_ms"] if best else {},
        "end_to_end_basis": basis,
        "freshness_measured": f"ClickHouse polled every {FRESHNESS_POLL_S:g} s: the first poll that shows a {TABLE} row, minus its "
                              f"data_retrieved_at (bucketed to {BUCKET_MS} ms)",
        "peak_rss_mb": {name: round(mb) for name, mb in processes.peak_rss.items()},
        "cpu_s_total": {name: round(s, 1) for name, s in processes.cpu.items()},
        "rates": steps,
        "warm_up_step": warm_up,
        "glassflow_shaped": glassflow,
        "glassflow_published": _e2e_report.GLASSFLOW_PUBLISHED,
        "iceberg_rows_total": lake_total,
        "lake_expiry": chores.report().get("iceberg", {}),
        "job_submission_s": round(submit_s, 1),
        "machine": machine,
        "settings": _settings_used(settings),
        "logs": log_errors(settings),
        "run_dir": str(run_dir),
        "benchmark_s": round(time.monotonic() - began),
    }


def main() -> dict:
    # The defaults, whatever the caller's environment and .env say; BENCH_E2E_TWITCH_PIPELINE_<NAME> changes one
    # setting for a comparison run (parsed and checked like the setting itself).
    overrides = {name.removeprefix("BENCH_E2E_"): value for name, value in os.environ.items() if name.startswith("BENCH_E2E_TWITCH_PIPELINE_")}
    with run_dir("e2e") as path:
        result = run(isolated(load_settings(environ=overrides, dotenv=None), path), echo=lambda line: print(line, flush=True))
    _e2e_report.write(result, REPORT_DIR)
    return result


if __name__ == "__main__":
    json.dump(main(), sys.stdout, indent=2, default=str)
