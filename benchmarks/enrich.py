"""Enrichment job: sustained events/s, produce-to-visible latency, and TaskManager memory.

Runs its own Kafka, Iceberg catalog and Flink cluster in a temporary run directory (ClickHouse is not
involved in this job, so it is not started). The job is the real `enrich_streams` SQL, submitted with
`twitch-pipeline submit` semantics, at the default settings (parallelism, checkpoint interval,
watermark lateness) unless stated.

* throughput: 2k profiles and 200 games are published, then a backlog of game_streams snapshots (5k
  streams polled once a minute of event time, every owner and game known, ~10 % re-sent with the same
  event_id) and the job runs bounded over it, once per variant (Flink configuration given to the driver)
  on the same backlog and platform, see VARIANTS. Flink's own job duration includes
  scheduling, deployment and operator start-up; the corrected rate counts from the moment the last
  subtask was RUNNING (the REST API's per-subtask state times) to the end, final checkpoint and commits
  included. The `flink run` client (JVM, Python, planning: tens of seconds here) is reported apart.
  Operators' busy/back-pressured time is sampled while the job runs: the busiest one is the bottleneck.
  Each run must add exactly the unique events to the lake and to the Kafka output (late ones aside).
* producer disorder: the synthetic source runs in real time into Kafka, and every partition is read
  back: how far each record's event time lies behind the latest one before it on its partition (what
  the watermark lateness must cover; Flink's Kafka source keeps a watermark per partition, so the
  interleaving of partitions does not count), and how long after its event time it was written.
* latency: the streaming job runs; snapshots are produced at a steady rate with
  ``data_retrieved_at`` = now, heartbeats go to every partition of the three input topics every
  ``heartbeat_interval_s`` (as the producers send them), and a read_committed consumer notes when each event_id becomes visible. A snapshot can only
  leave the event-time temporal join once the watermark (max event time - lateness) has passed it,
  and the exactly-once sink only exposes it at the next checkpoint commit: latency ~ lateness + up to
  one checkpoint interval (and, for the quiet profile and game topics, up to one heartbeat interval).
  It runs at 1 s lateness (the default until session 11, now 0.2 s: measured end to end by ``bench-e2e``) and 1 s
  checkpoints, with heartbeats every 1 s and every 5 s: what the heartbeat interval buys in freshness and costs
  in records and TaskManager CPU. (The previous defaults, 30 s
  lateness and 10 s checkpoints, measured p99 42.3 s: docs/performance.md.)
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import json
import math
import os
import random
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable, Iterator

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from benchmarks._scratch import run_dir
from connectors.iceberg import load_catalog
from connectors.kafka import client_config, produce_blocking
from connectors.topics import ensure_topics
from flink_jobs.enrich import JOB_NAME
from flink_jobs.runtime import sql_params
from producers.contracts import encode, iso_ms, stream_event_id, violations
from producers.heartbeat import emit_heartbeats
from producers.run import RunOptions
from producers.run import run as run_source
from twitch_pipeline.errors import PlatformError, wait_until
from twitch_pipeline.jobs import ACTIVE, find_active, stop_with_savepoint, submit
from twitch_pipeline.platform.flink import Flink
from twitch_pipeline.platform.lifecycle import isolated, running
from twitch_pipeline.platform.process import ManagedProcess
from twitch_pipeline.settings import Settings, load_settings

EVENTS = 200_000  # backlog of the throughput run, duplicates included: over a minute of processing here
USERS, GAMES, STREAMS = 2_000, 200, 5_000
DUPLICATE_SHARE = 0.10
POLL_MS = 60_000
BACKLOG_START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z; profiles and games date from an hour before
LATENCY_RATE = 300  # events/s
LATENCY_WARMUP_S = 10
# (settings, seconds measured after the warm-up) of each latency run
LATENCY_RUNS = {
    "lateness_1s_checkpoint_1s_heartbeat_1s": ({"watermark_lateness_s": 1.0, "checkpoint_interval_s": 1.0, "heartbeat_interval_s": 1.0}, 60),
    "lateness_1s_checkpoint_1s_heartbeat_5s": ({"watermark_lateness_s": 1.0, "checkpoint_interval_s": 1.0, "heartbeat_interval_s": 5.0}, 40),
}
# The job's variants timed on the same backlog (driver arguments), alternating so that neither has the machine's
# quieter minutes to itself, after a warm-up run: on a fresh TaskManager the first run is the slowest by far (JIT).
# (JSON_VALUE per field, before parsing once, measured 7,230 events/s, 6,649 per CPU-second.)
# The job runs with object reuse (flink_jobs/enrich.py); the A/B that decided it is kept, without it, alternating.
NO_REUSE, PARALLEL = ["--conf", "pipeline.object-reuse=false"], ["--conf", "parallelism.default=2"]
VARIANTS = {"warm_up": [], "current": [], "without_object_reuse": NO_REUSE, "current_again": [], "without_object_reuse_again": NO_REUSE,
            "parallelism_2": PARALLEL}
DISORDER_SECONDS = 75
DISORDER_POLL_INTERVAL_S = 15.0  # several polls of the synthetic source within the measurement
INPUT_TOPICS = ("game_streams", "twitch_users", "twitch_games")
OUTPUT_TOPIC = "game_streams_enriched"


# ------------------------------------------------------------------------------------------- events
class World:
    """Users, games and streams: every stream belongs to a published user and plays a published game."""

    def __init__(self, seed: int = 5):
        rng = random.Random(seed)
        self.stream_game = [rng.randrange(GAMES) for _ in range(STREAMS)]
        self.stream_tags = [rng.sample(("English", "Chill", "FPS", "RPG", "Competitive", "Cozy"), 2) for _ in range(STREAMS)]

    @staticmethod
    def user(i: int, at_ms: int) -> dict[str, Any]:
        return {"user_id": f"u{i}", "login": f"login_{i}", "display_name": f"Streamer{i}",
                "broadcaster_type": ("partner", "affiliate", "")[i % 3], "description": f"Variety streamer number {i}. Be nice.",
                "created_at": "2019-05-01T12:00:00.000Z", "data_retrieved_at": iso_ms(at_ms)}

    @staticmethod
    def game(i: int, at_ms: int) -> dict[str, Any]:
        return {"game_id": f"g{i}", "name": f"Game {i}", "box_art_url": f"https://static-cdn.jtvnw.net/ttv-boxart/g{i}-{{width}}x{{height}}.jpg",
                "igdb_id": str(1000 + i), "data_retrieved_at": iso_ms(at_ms)}

    def snapshot(self, stream: int, at_ms: int) -> dict[str, Any]:
        user, game = stream % USERS, self.stream_game[stream]
        retrieved = iso_ms(at_ms)
        return {"event_id": stream_event_id(f"s{stream}", retrieved), "stream_id": f"s{stream}", "user_id": f"u{user}",
                "user_login": f"login_{user}", "user_name": f"Streamer{user}", "game_id": f"g{game}", "game_name": f"Game {game}",
                "stream_type": "live", "title": f"day {stream % 97} of Game {game} | !discord", "viewer_count": 10 + (stream * 7919) % 5000,
                "started_at": iso_ms(at_ms // 3_600_000 * 3_600_000 - (stream % 60) * 60_000), "language": "en", "is_mature": stream % 7 == 0,
                "tags": self.stream_tags[stream], "data_retrieved_at": retrieved}


class Resender:
    """Turns ~DUPLICATE_SHARE of the sends into re-sends of a recent snapshot, as a retrying poller would.

    Only the last few snapshots are candidates, and `forget` drops them at a poll boundary, so a
    re-send is never behind the watermark: it must be deduplicated, not counted late.
    """

    def __init__(self, seed: int, window: int = 100):
        self.rng = random.Random(seed)
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=window)

    def next(self, fresh: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        if self.recent and self.rng.random() < DUPLICATE_SHARE:
            return self.rng.choice(self.recent)
        event = fresh()
        self.recent.append(event)
        return event

    def forget(self) -> None:
        self.recent.clear()


def backlog(world: World, count: int, seed: int) -> Iterator[dict[str, Any]]:
    """``count`` sends: every stream polled in turn once a minute of event time, duplicates included."""
    resender = Resender(seed)
    fresh = 0

    def new() -> dict[str, Any]:
        nonlocal fresh
        poll, stream = divmod(fresh, STREAMS)
        fresh += 1
        return world.snapshot(stream, BACKLOG_START_MS + poll * POLL_MS)

    for _ in range(count):
        if fresh % STREAMS == 0:
            resender.forget()
        yield resender.next(new)


def check_contracts(world: World) -> None:
    """The generated events must be valid by the producers' contracts, or the job would route them to dead letters."""
    for topic, event in (("twitch_users", world.user(0, 0)), ("twitch_games", world.game(0, 0)), ("game_streams", world.snapshot(0, 0))):
        if errors := violations(topic, event):
            raise ValueError(f"benchmark {topic} event breaks its contract: {errors}")


# ------------------------------------------------------------------------------------------- Kafka
def _producer(settings: Settings, linger_ms: int) -> Producer:
    return Producer(client_config(settings, **{"enable.idempotence": True, "linger.ms": linger_ms,
                                               "compression.type": settings.producer_compression}))


def _send(producer: Producer, topic: str, key: str, event: dict[str, Any]) -> None:
    produce_blocking(producer, topic, encode(event), key.encode())
    producer.poll(0)


def _flush(producer: Producer) -> None:
    if producer.flush(60) != 0:
        raise RuntimeError("Kafka producer could not deliver everything within 60 s")


def publish_dimensions(settings: Settings, world: World) -> None:
    producer = _producer(settings, 20)
    at = BACKLOG_START_MS - 3_600_000
    for i in range(USERS):
        _send(producer, "twitch_users", f"u{i}", world.user(i, at))
    for i in range(GAMES):
        _send(producer, "twitch_games", f"g{i}", world.game(i, at))
    _flush(producer)


def produce_backlog(settings: Settings, world: World, count: int, seed: int) -> tuple[int, float]:
    """Writes ``count`` snapshots to game_streams; returns (unique events, seconds)."""
    producer = _producer(settings, 20)
    unique: set[str] = set()
    began = time.monotonic()
    for event in backlog(world, count, seed):
        unique.add(event["event_id"])
        _send(producer, "game_streams", event["stream_id"], event)
    _flush(producer)
    return len(unique), time.monotonic() - began


def _end_offsets(consumer: Consumer, topic: str) -> list[TopicPartition]:
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    return [TopicPartition(topic, p, consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]) for p in sorted(partitions)]


def start_job_at_end_of_input(settings: Settings) -> None:
    """Commit the end of game_streams as the job's group offsets: its next run reads only what comes next.

    (Each phase reuses the job name, hence its group; profiles and games are always replayed whole.)
    """
    group = sql_params(settings, JOB_NAME, bounded=False)["group_id"]
    consumer = Consumer(client_config(settings, **{"group.id": group, "enable.auto.commit": False}))
    try:
        consumer.commit(offsets=_end_offsets(consumer, "game_streams"), asynchronous=False)
    finally:
        consumer.close()


def committed_records(settings: Settings, topic: str) -> int:
    """How many committed records ``topic`` holds (read to its end with read_committed)."""
    consumer = Consumer(client_config(settings, **{"group.id": "bench-enrich-count", "isolation.level": "read_committed",
                                                   "enable.auto.commit": False}))
    ends = _end_offsets(consumer, topic)
    consumer.assign([TopicPartition(topic, tp.partition, OFFSET_BEGINNING) for tp in ends])
    count = 0

    def at_end() -> bool:
        nonlocal count
        count += sum(1 for msg in consumer.consume(1000, timeout=0.5) if msg.error() is None)
        return all(tp.offset >= end.offset or end.offset == 0 for tp, end in zip(consumer.position(ends), ends))

    try:
        wait_until(at_end, 120, f"{topic} read to its end", interval_s=0)
    finally:
        consumer.close()
    return count


# ------------------------------------------------------------------------------------------- Flink
def _sample_load(flink: Flink, job_id: str, samples: dict[str, list[tuple[float, float]]]) -> None:
    """One reading of each running operator chain's busy and back-pressured ms per second."""
    job = flink.rest(f"/jobs/{job_id}")
    for vertex in job["vertices"]:
        if vertex["status"] != "RUNNING":
            continue
        metrics = {m["id"]: float(m["avg"]) for m in flink.rest(  # values may come as strings, "NaN" before the first reading
            f"/jobs/{job_id}/vertices/{vertex['id']}/subtasks/metrics?get=busyTimeMsPerSecond,backPressuredTimeMsPerSecond")}
        if len(metrics) == 2 and not any(math.isnan(v) for v in metrics.values()):
            samples[vertex["name"]].append((metrics.get("busyTimeMsPerSecond", 0.0), metrics.get("backPressuredTimeMsPerSecond", 0.0)))


def cpu_seconds(process: ManagedProcess) -> float:
    """User + system CPU time the process has used so far (from /proc; fields after the command name)."""
    fields = Path(f"/proc/{process.pid()}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _deployed(job: dict[str, Any]) -> bool:
    """Every task running or already done (the small dimension sources may finish within seconds)."""
    return all(v["status"] in ("RUNNING", "FINISHED") for v in job["vertices"])


def bounded_run(settings: Settings, args: list[str]) -> dict[str, Any]:
    """Run the job bounded over all game_streams holds; time it from Flink's view.

    The TaskManager's CPU time is also taken from the first sample that sees every task running to the
    end: the processing, without deployment.
    """
    flink = Flink(settings)
    samples: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)
    taskmanager = flink.processes[1]
    cpu_before = cpu_seconds(taskmanager)
    cpu_running: tuple[float, float] | None = None  # (monotonic time, TaskManager CPU s) when all tasks ran
    began = time.monotonic()
    with ThreadPoolExecutor(1) as pool:
        submitted = pool.submit(submit, settings, JOB_NAME, ["--bounded", *args])
        while not wait([submitted], timeout=2).done:  # sample every 2 s until `flink run` returns
            try:
                running = find_active(settings, JOB_NAME)
                if running is not None and running["state"] == "RUNNING":
                    if cpu_running is None and _deployed(flink.rest(f"/jobs/{running['id']}")):
                        cpu_running = (time.monotonic(), cpu_seconds(taskmanager))
                    _sample_load(flink, running["id"], samples)
            except (PlatformError, OSError):  # a REST call timing out on a busy machine costs one sample, not the run
                continue
        job_id = submitted.result()
    wall_s = time.monotonic() - began
    cpu_end = cpu_seconds(taskmanager)
    taskmanager_cpu_s = cpu_end - cpu_before
    # a job done before any sample saw it deployed: its whole CPU time, over its time from deployed to end
    processing_cpu_s = cpu_end - cpu_running[1] if cpu_running else taskmanager_cpu_s
    processing_wall_s = time.monotonic() - cpu_running[0] if cpu_running else None
    job: dict[str, Any] = {}

    def ended() -> bool:  # the REST API caches job details for a few seconds (web.refresh-interval)
        job.update(flink.rest(f"/jobs/{job_id}"))
        return job["state"] not in ACTIVE

    wait_until(ended, 30, f"bounded {JOB_NAME} reported as ended", interval_s=0.5)
    if job["state"] != "FINISHED":
        raise RuntimeError(f"bounded {JOB_NAME} ended {job['state']}: see {settings.run_path / 'logs'}")
    all_running = max(task["timestamps"]["RUNNING"] for vertex in job["vertices"]
                      for task in flink.rest(f"/jobs/{job_id}/vertices/{vertex['id']}/subtasktimes")["subtasks"])
    load = {name[:90]: {"busy_ms_per_s": round(statistics.mean(b for b, _ in s)), "backpressured_ms_per_s": round(statistics.mean(p for _, p in s))}
            for name, s in samples.items()}
    return {"job_id": job_id, "submit_wall_s": wall_s, "taskmanager_cpu_s": taskmanager_cpu_s, "job_s": job["duration"] / 1000,
            "processing_cpu_s": processing_cpu_s, "processing_wall_s": processing_wall_s or (job["end-time"] - all_running) / 1000,
            "running_to_end_s": (job["end-time"] - all_running) / 1000, "operator_load": load,
            "restarts_or_failures": len(flink.rest(f"/jobs/{job_id}/exceptions").get("exceptionHistory", {}).get("entries", []))}


def lake_rows(settings: Settings, name: str = OUTPUT_TOPIC) -> int:
    """Rows in the lake table ``name`` (its current snapshot's total), 0 before the job created it."""
    from pyiceberg.exceptions import NoSuchTableError

    try:  # the job creates the table on its first run
        table = load_catalog(settings).load_table(f"{settings.iceberg_namespace}.{name}")
    except NoSuchTableError:
        return 0
    snapshot = table.current_snapshot()
    return int(snapshot.summary["total-records"]) if snapshot else 0


def throughput(settings: Settings, world: World) -> dict[str, Any]:
    """One backlog, each SQL variant run bounded over all of it: rates and the exactly-once counts of each."""
    check_contracts(world)
    publish_dimensions(settings, world)
    unique, produce_s = produce_backlog(settings, world, EVENTS, seed=2)
    result: dict[str, Any] = {"events": EVENTS, "unique_events": unique, "producer_events_per_s": round(EVENTS / produce_s)}
    for name, args in VARIANTS.items():
        result[name] = variant_run(settings, unique, args)
        print(f"{name}: {result[name]['events_per_s_corrected']} events/s, {result[name]['events_per_taskmanager_cpu_s']} per TaskManager CPU-s, "
              f"load {result[name]['load_average_1min_start_end']}", flush=True)  # progress: the whole benchmark takes a while
    return result


def variant_run(settings: Settings, unique: int, args: list[str]) -> dict[str, Any]:
    """The bounded job over the whole backlog: each run adds every unique event once (to the lake and the topic)."""
    before = lake_rows(settings), committed_records(settings, "late_events"), committed_records(settings, OUTPUT_TOPIC)
    load_at_start = os.getloadavg()[0]
    run = bounded_run(settings, args)
    load_at_end = os.getloadavg()[0]
    lake, late, kafka = (after - earlier for after, earlier in zip(
        (lake_rows(settings), committed_records(settings, "late_events"), committed_records(settings, OUTPUT_TOPIC)), before))
    return {
        "lake_rows_written": lake,
        "kafka_rows_written": kafka,
        "late_events_written": late,
        "exactly_once": lake + late == unique and kafka + late == unique,
        "bounded_job_s": round(run["job_s"], 1),
        "events_per_s_raw": round(EVENTS / run["job_s"]),
        "all_tasks_running_to_end_s": round(run["running_to_end_s"], 1),
        "events_per_s_corrected": round(EVENTS / run["running_to_end_s"]),
        "job_start_up_s": round(run["job_s"] - run["running_to_end_s"], 1),
        "flink_run_client_s": round(run["submit_wall_s"] - run["job_s"], 1),
        "taskmanager_cpu_s": round(run["taskmanager_cpu_s"], 1),
        "taskmanager_cpu_s_processing": round(run["processing_cpu_s"], 1),
        "taskmanager_cores_used_processing": round(run["processing_cpu_s"] / run["processing_wall_s"], 2),
        "events_per_taskmanager_cpu_s": round(EVENTS / run["processing_cpu_s"]),
        "operator_load": run["operator_load"],
        "restarts_or_failures": run["restarts_or_failures"],
        "load_average_1min_start_end": [round(load_at_start, 1), round(load_at_end, 1)],
    }


# ------------------------------------------------------------------------------------------- producer disorder
def _event_time_ms(topic: str, value: bytes) -> int | None:
    """The event time the jobs use: sent_at for chat messages (a heartbeat's data_retrieved_at), else data_retrieved_at."""
    from datetime import datetime

    try:
        event = json.loads(value)
        stamp = event.get("sent_at") or event["data_retrieved_at"]
        return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def producer_disorder(settings: Settings) -> dict[str, Any]:
    """The synthetic source in real time for DISORDER_SECONDS; per topic, each partition read back in order.

    behind_ms: how far a record's event time is behind the latest event time before it on its partition
    (0 when in order); a watermark lateness below the maximum would class such records late.
    written_after_event_ms: Kafka's record timestamp minus the event time (the source's own delay).
    """
    source = dataclasses.replace(settings, twitch_poll_interval_s=DISORDER_POLL_INTERVAL_S)
    consumer = Consumer(client_config(settings, **{"group.id": "bench-enrich-disorder", "enable.auto.commit": False}))
    topics = (*INPUT_TOPICS, "chat_messages")
    starts = {(topic, tp.partition): tp.offset for topic in topics for tp in _end_offsets(consumer, topic)}  # only this run's records
    stop = threading.Event()
    runner = threading.Thread(target=run_source, args=(source, RunOptions()), kwargs={"out": None, "stop": stop}, daemon=True)
    runner.start()
    time.sleep(DISORDER_SECONDS)  # the measurement window itself, not a wait for a result
    stop.set()
    runner.join(60)
    result: dict[str, Any] = {"seconds": DISORDER_SECONDS, "poll_interval_s": DISORDER_POLL_INTERVAL_S}
    try:
        for topic in topics:
            behind: list[int] = []
            written_after: list[int] = []
            for end in _end_offsets(consumer, topic):
                read = starts[(topic, end.partition)]
                consumer.assign([TopicPartition(topic, end.partition, read)])
                latest = None
                while read < end.offset:
                    for msg in consumer.consume(1000, timeout=1):
                        if msg.error() is not None:
                            continue
                        read = msg.offset() + 1
                        at = _event_time_ms(topic, msg.value())
                        if at is None:
                            continue
                        latest = at if latest is None else max(latest, at)
                        behind.append(latest - at)
                        written_after.append(msg.timestamp()[1] - at)
            behind.sort()
            written_after.sort()
            result[topic] = {"records": len(behind), "out_of_order": sum(1 for b in behind if b > 0),
                             "behind_ms": _quantiles(behind), "written_after_event_ms": _quantiles(written_after)}
    finally:
        consumer.close()
    return result


def _quantiles(ordered: list[int]) -> dict[str, int]:
    if not ordered:
        return {}
    return {f"p{q * 100:g}": ordered[min(len(ordered) - 1, int(q * len(ordered)))] for q in (0.5, 0.99, 0.999)} | {"max": ordered[-1]}


# ------------------------------------------------------------------------------------------- latency
class Watcher:
    """A read_committed consumer from the output's current end, noting when each event_id first shows."""

    def __init__(self, settings: Settings):
        self.visible: dict[str, float] = {}
        self.consumer = Consumer(client_config(settings, **{"group.id": "bench-enrich-latency", "isolation.level": "read_committed",
                                                            "enable.auto.commit": False}))
        self.consumer.assign(_end_offsets(self.consumer, OUTPUT_TOPIC))
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.is_set():
            for msg in self.consumer.consume(500, timeout=0.2):
                if msg.error() is None and msg.key() is not None:
                    self.visible.setdefault(msg.key().decode(), time.time())

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(10)
        self.consumer.close()


def _wait_deployed(flink: Flink, job_id: str) -> None:
    wait_until(lambda: all(v["status"] == "RUNNING" for v in flink.rest(f"/jobs/{job_id}")["vertices"]), 120, f"{JOB_NAME} tasks running")


def _percentiles(delays: list[float]) -> dict[str, float]:
    ordered = sorted(delays)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50_s": round(at(0.50), 2), "p95_s": round(at(0.95), 2), "p99_s": round(at(0.99), 2), "max_s": round(ordered[-1], 2),
            "min_s": round(ordered[0], 2)}


def latency(settings: Settings, world: World, seconds: float, seed: int) -> dict[str, Any]:
    """Streaming job at ``settings``; produce at LATENCY_RATE with event time = now; delays of the measured window."""
    flink = Flink(settings)
    start_job_at_end_of_input(settings)
    job_id = submit(settings, JOB_NAME, resume=False)
    _wait_deployed(flink, job_id)
    watcher = Watcher(settings)
    producer = _producer(settings, 5)
    resender = Resender(seed)
    produced: dict[str, float] = {}
    measured_from = time.time() + LATENCY_WARMUP_S
    stop_producing = measured_from + seconds
    streams = itertools.count()
    next_heartbeat = 0.0
    heartbeats = 0  # heartbeat records written in the measured window: what a shorter interval costs in records
    cpu_measured: list[float] = []  # the TaskManager's CPU seconds at the start and end of the measured window
    try:
        tick = time.time()
        while (now := time.time()) < stop_producing:
            if now >= measured_from and not cpu_measured:
                cpu_measured.append(cpu_seconds(flink.processes[1]))
            for _ in range(LATENCY_RATE // 10):
                event = resender.next(lambda: world.snapshot(next(streams) % STREAMS, int(now * 1000)))
                produced.setdefault(event["event_id"], now)
                _send(producer, "game_streams", event["stream_id"], event)
            if now >= next_heartbeat:
                sent = emit_heartbeats(producer, INPUT_TOPICS, int(now * 1000))
                heartbeats += sent if now >= measured_from else 0
                next_heartbeat = now + settings.heartbeat_interval_s
            producer.poll(0)
            tick += 0.1
            time.sleep(max(0.0, tick - time.time()))  # pacing the producer, not waiting for a result
        cpu_measured.append(cpu_seconds(flink.processes[1]))
        _flush(producer)
        expected = {eid for eid, at in produced.items() if at >= measured_from}
        deadline_s = settings.watermark_lateness_s + 3 * settings.checkpoint_interval_s + 60

        def drained() -> bool:  # heartbeats keep event time moving so the join releases the last snapshots
            emit_heartbeats(producer, INPUT_TOPICS, int(time.time() * 1000))
            producer.poll(0)
            return expected <= watcher.visible.keys()

        wait_until(drained, deadline_s, "every measured event visible in read_committed output", interval_s=1)
        tm_rss = flink.processes[1].rss_mb()
    finally:
        watcher.close()
        stop_with_savepoint(settings, JOB_NAME)
    delays = [watcher.visible[eid] - produced[eid] for eid in expected]
    lateness, interval = settings.watermark_lateness_s, settings.checkpoint_interval_s
    return {
        "watermark_lateness_s": lateness,
        "checkpoint_interval_s": interval,
        "heartbeat_interval_s": settings.heartbeat_interval_s,
        "rate_events_per_s": LATENCY_RATE,
        "measured_events": len(expected),
        "produce_to_visible": _percentiles(delays),
        "heartbeat_records_per_s": round(heartbeats / seconds, 1),
        "taskmanager_cores_used": round((cpu_measured[1] - cpu_measured[0]) / seconds, 3),
        "expected_bound_s": f"~{lateness:g} (lateness) + 0.1 (dedup window) + 0..{settings.heartbeat_interval_s:g} (heartbeats of quiet topics) "
                            f"+ 0..{interval:g} (next checkpoint commit) + processing",
        "taskmanager_rss_mb_while_streaming": tm_rss,
    }


# ------------------------------------------------------------------------------------------- run
def log_errors(settings: Settings, limit: int = 5) -> dict[str, Any]:
    """ERROR lines of the Flink and Kafka logs: how many, and the first few distinct messages.

    Flink writes each line both to its own log file and to the stdout we capture: identical lines count once.
    """
    lines = {line for log in (settings.run_path / "logs").glob("*.log")
             for line in log.read_text(errors="replace").splitlines() if " ERROR " in line}
    messages = dict.fromkeys(line.split(" ERROR ", 1)[1].strip()[:200] for line in sorted(lines))
    return {"error_lines": len(lines), "first_distinct": list(messages)[:limit]}


def main() -> dict:
    with run_dir("enrich") as path, running(isolated(load_settings(environ={}, dotenv=None), path)) as settings:
        world = World()
        load_before = os.getloadavg()
        began = time.monotonic()
        ensure_topics(settings)
        flink = Flink(settings)
        result: dict[str, Any] = {"parallelism": settings.flink_parallelism, "partitions": settings.kafka_partitions,
                                  "cores": os.cpu_count(), "load_average_1_5_15_at_start": [round(x, 1) for x in load_before]}
        result["throughput"] = throughput(settings, world)
        result["taskmanager_rss_mb_after_bounded"] = flink.processes[1].rss_mb()
        for seed, (name, (knobs, seconds)) in enumerate(LATENCY_RUNS.items(), start=3):
            try:
                result[f"latency_{name}"] = latency(dataclasses.replace(settings, **knobs), world, seconds, seed=seed)
            except PlatformError as err:  # one run's failure must not cost the others' numbers
                result[f"latency_{name}"] = {"failed": str(err)}
        result["taskmanager_rss_mb_end"] = flink.processes[1].rss_mb()
        result["jobmanager_rss_mb_end"] = flink.processes[0].rss_mb()
        result["producer_disorder"] = producer_disorder(settings)  # last: it writes the synthetic world into the input topics
        result["load_average_1_5_15_at_end"] = [round(x, 1) for x in os.getloadavg()]
        result["logs"] = log_errors(settings)
        result["run_dir"] = str(settings.run_path)
        result["benchmark_s"] = round(time.monotonic() - began)
        return result
