"""Chat pipeline: messages/s through bronze → silver → gold, and the share of time spent in the Python UDF.

Runs its own Kafka, Iceberg catalog and Flink cluster in a temporary run directory (ClickHouse is measured by
the sink benchmark). A backlog of synthetic chat (the synthetic source's own message writer: emotes with
positions, questions, mentions, replies, spam; MESSAGES over CHANNELS channels and MINUTES minutes of event
time, ~5 % re-delivered) and one stream snapshot per channel and minute are written first; then `chat_enrich`
runs bounded over it (bronze, dead letters, silver) and `chat_aggregate` runs bounded over its output (gold).

* rate: messages / processing seconds, per job and for the two in sequence. Processing counts from the moment
  the last subtask was RUNNING (REST subtask times) to the job's end, final checkpoint and commits included;
  the `flink run` client (JVM, Python, planning) is reported apart. The machine is shared, so the wall-clock rate
  comes with the load average, and with the contention-robust figure: messages per CPU second of the TaskManager
  JVM plus the Python UDF workers (from /proc, submission to end: deployment and the per-checkpoint commits
  included).
* Python share: CPU seconds of the Python UDF workers (the TaskManager's Python children, sampled from /proc
  while the job runs) against those of the TaskManager JVM plus the workers, and each operator chain's busy /
  back-pressured ms per second from the REST metrics (the UDF is chained with the source, so its time shows in
  that vertex).
* variants: chat_enrich runs once more per entry of ENRICH_VARIANTS (Flink configuration through the drivers'
  ``--conf``) over the same backlog on the same platform, after the current job and the aggregation.
* exactly once: the chat_enrich run must add every record to bronze and every unique message to silver (a variant
  reports whether it did).
* the chain streaming: both jobs unbounded, on a fresh platform over CHAIN_MESSAGES messages (the
  same density over CHAIN_MINUTES minutes, closed by heartbeats behind them), as they run in production. Each gold
  minute's first row in the chat_minute_stats topic (read_committed) marks the gold's progress, the chat_silver
  topic's end offsets the enrichment's; the rate is taken from the enrichment's start (the aggregation already
  running) to the last gold minute, and steady over the second half of silver (the first is the warm-up: class
  loading, JIT). The gold must count every unique message.
"""

from __future__ import annotations

import collections
import json
import os
import random
import statistics
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer

from benchmarks._scratch import run_dir
from benchmarks.enrich import _end_offsets, _sample_load, cpu_seconds, lake_rows
from connectors.kafka import client_config, partition_count, produce_blocking
from connectors.topics import ensure_topics, heartbeat_keys
from producers.contracts import iso_ms, mentions
from producers.heartbeat import emit_heartbeats
from producers.synthetic_chat import ChatWriter
from twitch_pipeline.errors import PlatformError, wait_until
from twitch_pipeline.jobs import ACTIVE, cancel, find_active, submit
from twitch_pipeline.platform.flink import Flink
from twitch_pipeline.platform.lifecycle import isolated, running
from twitch_pipeline.settings import Settings, load_settings

MESSAGES = 100_000
CHANNELS = 50
MINUTES = 10
DUPLICATE_SHARE = 0.05
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
#: The chain streaming: both jobs at once over a longer backlog of the same density, on a platform of its own (the
#: bounded runs' silver would be read again), so its rate can be taken after the warm-up. Two hours of chat, 1.2M
#: messages: on a fresh TaskManager the JIT compiler threads still took 0.4 of its cores 70 s into the chain and 0.14
#: after 130 s (JFR, session 8), so a 30-minute backlog (~40 s) measured mostly the warm-up.
CHAIN_MINUTES = 120
CHAIN_MESSAGES = MESSAGES * CHAIN_MINUTES // MINUTES
CHAIN_JOBS = ("chat_aggregate", "chat_enrich")
#: chat_enrich again with other settings (the drivers' --conf), on the same backlog and platform.
#: The first run of a fresh TaskManager also pays its warm-up (class loading, code generation, JIT), and the machine's
#: load changes between runs: "current_again" repeats the job as it is, the control for the variants around it.
ENRICH_VARIANTS: dict[str, tuple[str, ...]] = {
    "arrow_batch_and_bundle_10000": ("python.fn-execution.arrow.batch.size=10000", "python.fn-execution.bundle.size=10000"),
    "current_again": (),
    "parallelism_2": ("table.exec.resource.default-parallelism=2",),
}


def backlog(seed: int = 7, messages: int = MESSAGES, minutes: int = MINUTES) -> tuple[list[tuple[str, bytes]], int]:
    """(channel, record) in event-time order, duplicates included, and the number of unique messages."""
    rng = random.Random(seed)
    writer = ChatWriter(rng)
    channels = [(f"channel{c:03d}", str(100_000 + c)) for c in range(CHANNELS)]
    emotes = {login: writer.channel_emotes(login, user_id) for login, user_id in channels}
    recent: dict[str, collections.deque] = {login: collections.deque(maxlen=20) for login, _ in channels}
    records: list[tuple[str, bytes]] = []
    unique = 0
    step_ms = minutes * 60_000 / messages
    while len(records) < messages:
        if records and rng.random() < DUPLICATE_SHARE:
            records.append(records[-1 - rng.randrange(min(len(records), 50))])
            continue
        login, user_id = channels[rng.randrange(CHANNELS)]
        line = writer.line("en", emotes[login], list(recent[login]))
        chatter = f"viewer{rng.randrange(5000)}"
        sent = START_MS + int(len(records) * step_ms)
        message = {"message_id": line.message_id, "channel": login, "channel_id": user_id, "chatter_id": chatter, "chatter_login": chatter,
                   "chatter_name": chatter.title(), "text": line.text, "emotes": line.emotes, "badges": [{"set_id": "subscriber", "id": "6"}],
                   "reply_parent_message_id": line.reply_to, "mentions": mentions(line.text), "sent_at": iso_ms(sent), "data_retrieved_at": iso_ms(sent + 150)}
        recent[login].append((line.message_id, chatter))
        records.append((login, json.dumps(message, ensure_ascii=False).encode()))
        unique += 1
    return records, unique


def produce(settings: Settings, records: list[tuple[str, bytes]], minutes: int = MINUTES) -> float:
    producer = Producer(client_config(settings, **{"enable.idempotence": True, "linger.ms": 20, "compression.type": settings.producer_compression}))
    began = time.monotonic()
    for channel, value in records:
        produce_blocking(producer, "chat_messages", value, channel.encode())
        producer.poll(0)
    for minute in range(minutes):
        for c in range(CHANNELS):
            login = f"channel{c:03d}"
            snapshot = {"event_id": f"{login}-{minute}", "user_login": login, "game_name": "Just Chatting", "title": "chatting",
                        "viewer_count": 500 + 100 * c, "data_retrieved_at": iso_ms(START_MS + minute * 60_000 + 30_000)}
            produce_blocking(producer, "game_streams_enriched", json.dumps(snapshot).encode(), snapshot["event_id"].encode())
    if producer.flush(120) != 0:
        raise RuntimeError("Kafka producer could not deliver the backlog within 120 s")
    return time.monotonic() - began


def _python_workers(taskmanager_pid: int) -> list[int]:
    """Pids of the TaskManager's descendant Python processes (PyFlink's UDF workers)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue

    def descends(pid: int) -> bool:
        for _ in range(10):
            pid = parents.get(pid, 0)
            if pid == taskmanager_pid:
                return True
            if pid <= 1:
                return False
        return False

    workers = []
    for pid in parents:
        try:
            if descends(pid) and b"python" in Path(f"/proc/{pid}/cmdline").read_bytes():
                workers.append(pid)
        except OSError:
            continue
    return workers


def _sample_python_cpu(taskmanager_pid: int, python_cpu: dict[int, float]) -> None:
    """Record each Python UDF worker's CPU seconds so far (the largest seen: a worker's counter only grows)."""
    for pid in _python_workers(taskmanager_pid):
        if (seconds := _cpu(pid)) is not None:
            python_cpu[pid] = max(python_cpu.get(pid, 0.0), seconds)


def _cpu(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bounded_run(settings: Settings, job_name: str, args: tuple[str, ...] = ()) -> dict[str, Any]:
    """Run ``job_name`` bounded; processing time from Flink's view, operator load and Python worker CPU sampled meanwhile."""
    flink = Flink(settings)
    taskmanager = flink.processes[1]
    samples: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)
    python_cpu: dict[int, float] = {}
    tm_cpu_before = cpu_seconds(taskmanager)
    load_before = os.getloadavg()[0]
    began = time.monotonic()
    with ThreadPoolExecutor(1) as pool:
        submitted = pool.submit(submit, settings, job_name, ["--bounded", *args])
        while not wait([submitted], timeout=2).done:
            _sample_python_cpu(taskmanager.pid(), python_cpu)
            try:
                active = find_active(settings, job_name)
                if active is not None and active["state"] == "RUNNING":
                    _sample_load(flink, active["id"], samples)
            except (PlatformError, OSError):  # a REST call timing out on a busy machine costs one sample, not the run
                continue
        job_id = submitted.result()
    client_s = time.monotonic() - began
    tm_cpu_s = cpu_seconds(taskmanager) - tm_cpu_before
    job: dict[str, Any] = {}

    def ended() -> bool:
        job.update(flink.rest(f"/jobs/{job_id}"))
        return job["state"] not in ACTIVE

    wait_until(ended, 30, f"bounded {job_name} reported as ended", interval_s=0.5)
    if job["state"] != "FINISHED":
        raise RuntimeError(f"bounded {job_name} ended {job['state']}: see {settings.run_path / 'logs'}")
    all_running = max(task["timestamps"]["RUNNING"] for vertex in job["vertices"]
                      for task in flink.rest(f"/jobs/{job_id}/vertices/{vertex['id']}/subtasktimes")["subtasks"])
    python_s = sum(python_cpu.values())
    return {
        "processing_s": (job["end-time"] - all_running) / 1000,
        # each commits a Kafka transaction per sink and an Iceberg snapshot per table: CPU that grows with wall time, not messages
        "checkpoints": flink.rest(f"/jobs/{job_id}/checkpoints")["counts"]["completed"],
        "submit_wall_s": round(client_s, 1),
        "taskmanager_cpu_s": round(tm_cpu_s, 1),
        "python_worker_cpu_s": round(python_s, 1),
        "python_cpu_share": round(python_s / (python_s + tm_cpu_s), 3) if python_s + tm_cpu_s else None,
        "load_average_1m": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "operator_load": {name[:100]: {"busy_ms_per_s": round(statistics.mean(b for b, _ in s)), "backpressured_ms_per_s": round(statistics.mean(p for _, p in s))}
                          for name, s in samples.items()},
    }


def rates(result: dict[str, Any], messages: int) -> dict[str, Any]:
    """The run's messages per second of processing and per CPU second (TaskManager and Python workers)."""
    cpu_s = result["taskmanager_cpu_s"] + result["python_worker_cpu_s"]
    return {**result, "messages_per_s": round(messages / result["processing_s"]), "messages_per_cpu_s": round(messages / cpu_s) if cpu_s else None}


def enrich_run(settings: Settings, records: int, unique: int, args: tuple[str, ...] = ()) -> dict[str, Any]:
    """chat_enrich bounded over the whole backlog, and whether it added every record to bronze and every unique message to silver."""
    before = lake_rows(settings, "chat_bronze"), lake_rows(settings, "chat_silver")
    result = rates(bounded_run(settings, "chat_enrich", args), records)
    added = lake_rows(settings, "chat_bronze") - before[0], lake_rows(settings, "chat_silver") - before[1]
    return {**result, "bronze_rows_added": added[0], "silver_rows_added": added[1], "exactly_once": added == (records, unique)}


def close_windows(settings: Settings, at_ms: int) -> None:
    """Heartbeats at ``at_ms`` and a minute later on every partition of both inputs, behind the backlog: the last
    minute's watermark then passes on each (chat_enrich relays a heartbeat to silver once the next one passes it)."""
    producer = Producer(client_config(settings, **{"enable.idempotence": True}))
    keys = heartbeat_keys(partition_count(settings, "game_streams_enriched"))
    for at in (at_ms, at_ms + 60_000):
        emit_heartbeats(producer, ["chat_messages"], at)
        for partition, key in enumerate(keys):
            heartbeat = json.dumps({"event_id": key, "data_retrieved_at": iso_ms(at)}).encode()
            producer.produce("game_streams_enriched", heartbeat, key=key.encode(), partition=partition)
    if producer.flush(60) != 0:
        raise RuntimeError("Kafka producer could not deliver the closing heartbeats within 60 s")


def _reached(samples: list[tuple[float, int]], count: float) -> float:
    """When a sampled counter first reached ``count`` (interpolated between the samples around it)."""
    for (t0, c0), (t1, c1) in zip(samples, samples[1:]):
        if c1 >= count:
            return t0 + (t1 - t0) * (count - c0) / (c1 - c0) if c1 > c0 else t1
    return samples[-1][0]


def chain_run(settings: Settings, unique: int, deadline_s: float = 900) -> dict[str, Any]:
    """Both jobs streaming at once over the backlog: when each gold minute becomes visible, and the chain's rate.

    Every minute holds the same number of messages, so the minutes' visibility times trace the gold's progress;
    they are seen at checkpoint commits (1 s apart), which bounds their precision. The silver topic's end offsets,
    sampled every second, trace the enrichment's. The steady rate is taken while both jobs work, from when silver
    is half written to when it is complete: the lower of the enrichment's and the gold's rates over that window.
    (Taken to the last gold minute instead, it would count the aggregation catching up on silver after the
    enrichment ended, with the two cores to itself.)
    """
    flink = Flink(settings)
    taskmanager = flink.processes[1]
    close_windows(settings, START_MS + CHAIN_MINUTES * 60_000 + int(settings.watermark_lateness_s * 1000) + 5_000)
    consumer = Consumer(client_config(settings, **{"group.id": f"bench-chain-{time.time_ns()}", "isolation.level": "read_committed",
                                                   "auto.offset.reset": "earliest", "enable.auto.commit": False}))
    consumer.subscribe(["chat_minute_stats"])
    seen: dict[str, float] = {}
    messages: collections.Counter[str] = collections.Counter()
    python_cpu: dict[int, float] = {}
    silver: list[tuple[float, int]] = []  # (time, records in chat_silver)

    def sample() -> None:  # a /proc walk and a metadata request: every second and once at the end, not on every poll
        _sample_python_cpu(taskmanager.pid(), python_cpu)
        silver.append((time.time(), sum(tp.offset for tp in _end_offsets(consumer, "chat_silver"))))

    tm_cpu_before = cpu_seconds(taskmanager)
    # One after the other: two clients initializing a fresh Iceberg JDBC catalog at once race on its schema
    # ("duplicate column name: iceberg_type"). The aggregation first, so it waits for silver when the chain starts.
    job_ids = [submit(settings, job) for job in CHAIN_JOBS]
    try:
        deadline, next_sample = time.monotonic() + deadline_s, 0.0
        while sum(messages.values()) < unique:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the chain's gold held {sum(messages.values())} of {unique} messages after {deadline_s:.0f} s")
            if time.monotonic() >= next_sample:
                sample()
                next_sample = time.monotonic() + 1
            for record in consumer.consume(500, timeout=0.2):
                if record.error() is None and record.value():
                    row = json.loads(record.value())
                    seen.setdefault(row["window_start"], time.time())
                    messages[row["window_start"]] += row["messages"]
        sample()
        tm_cpu_s = cpu_seconds(taskmanager) - tm_cpu_before
        # the chain starts once the enrichment, submitted last, has all its tasks running
        running_since = max(task["timestamps"]["RUNNING"] / 1000 for vertex in flink.rest(f"/jobs/{job_ids[-1]}")["vertices"]
                            for task in flink.rest(f"/jobs/{job_ids[-1]}/vertices/{vertex['id']}/subtasktimes")["subtasks"])
    finally:
        consumer.close()
        for job in CHAIN_JOBS:
            cancel(settings, job)
    order = sorted(seen, key=seen.get)
    silver_total = silver[-1][1]
    half, done = _reached(silver, silver_total / 2), _reached(silver, silver_total)  # the first half is the warm-up
    gold_steady = sum(messages[w] for w in order if half < seen[w] <= done) / (done - half)
    silver_steady = (silver_total / 2) / (done - half)
    python_s = sum(python_cpu.values())
    return {
        "minutes": len(order), "gold_messages": sum(messages.values()),
        "messages_per_s": round(unique / (seen[order[-1]] - running_since)),
        "steady_messages_per_s": round(min(gold_steady, silver_steady)),
        "steady_window_s": [round(half - running_since, 1), round(done - running_since, 1)],
        "steady_silver_records_per_s": round(silver_steady), "steady_gold_messages_per_s": round(gold_steady),
        "last_gold_minute_after_silver_s": round(seen[order[-1]] - done, 1),
        "taskmanager_cpu_s": round(tm_cpu_s, 1), "python_worker_cpu_s": round(python_s, 1),
        "messages_per_cpu_s": round(unique / (tm_cpu_s + python_s)),
        "minutes_visible_s": [round(seen[w] - running_since, 1) for w in order],
    }


def main() -> dict:
    # Parallelism 1, whatever the default: at 2, bounded runs lost the tail of one partition's bronze rows (docs/chat.md).
    base = load_settings(environ={"TWITCH_PIPELINE_FLINK_PARALLELISM": "1"}, dotenv=None)
    records, unique = backlog()
    with run_dir("chat") as path, running(isolated(base, path)) as settings:
        load_start = os.getloadavg()[0]
        ensure_topics(settings)
        produce_s = produce(settings, records)
        enrich = enrich_run(settings, len(records), unique)
        if not enrich["exactly_once"]:
            raise RuntimeError(f"not exactly once: bronze +{enrich['bronze_rows_added']} of {len(records)} records, "
                               f"silver +{enrich['silver_rows_added']} of {unique} unique messages")
        aggregate = rates(bounded_run(settings, "chat_aggregate"), len(records))
        gold = lake_rows(settings, "chat_minute_stats")
        variants = {name: enrich_run(settings, len(records), unique, tuple(a for kv in conf for a in ("--conf", kv)))
                    for name, conf in ENRICH_VARIANTS.items()}
    chain_records, chain_unique = backlog(seed=11, messages=CHAIN_MESSAGES, minutes=CHAIN_MINUTES)
    with run_dir("chat-chain") as path, running(isolated(base, path)) as settings:
        ensure_topics(settings)
        produce(settings, chain_records, CHAIN_MINUTES)
        chain = {"messages": len(chain_records), "unique_messages": chain_unique, **chain_run(settings, chain_unique)}
    total_s = enrich["processing_s"] + aggregate["processing_s"]
    cpu_s = sum(r["taskmanager_cpu_s"] + r["python_worker_cpu_s"] for r in (enrich, aggregate))
    return {
        "messages": len(records), "unique_messages": unique, "channels": CHANNELS, "minutes": MINUTES, "produce_s": round(produce_s, 1),
        "bronze_to_gold_messages_per_s": round(len(records) / total_s), "bronze_to_gold_messages_per_cpu_s": round(len(records) / cpu_s),
        "python_cpu_share_bronze_to_gold": round(enrich["python_worker_cpu_s"] / cpu_s, 3),
        "chat_enrich": enrich, "chat_aggregate": aggregate, "chat_enrich_variants": variants, "chat_minute_stats_rows": gold,
        "chain_streaming": chain,
        "cores": os.cpu_count(), "load_average_1m": [round(load_start, 1), round(os.getloadavg()[0], 1)],
    }
