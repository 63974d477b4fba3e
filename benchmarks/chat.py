"""Chat pipeline: messages/s through bronze → silver → gold, and the share of time spent in the Python UDF.

Runs its own Kafka, Iceberg catalog and Flink cluster in a temporary run directory (ClickHouse is measured by
the sink benchmark). A backlog of synthetic chat (the synthetic source's own message writer: emotes with
positions, questions, mentions, replies, spam; MESSAGES over CHANNELS channels and MINUTES minutes of event
time, ~5 % re-delivered) and one stream snapshot per channel and minute are written first; then `chat_enrich`
runs bounded over it (bronze, dead letters, silver) and `chat_aggregate` runs bounded over its output (gold).

* rate: messages / processing seconds, per job and for the two in sequence. Processing counts from the moment
  the last subtask was RUNNING (REST subtask times) to the job's end, final checkpoint and commits included;
  the `flink run` client (JVM, Python, planning) is reported apart.
* Python share: CPU seconds of the Python UDF workers (the TaskManager's Python children, sampled from /proc
  while the job runs) against those of the TaskManager JVM plus the workers, and each operator chain's busy /
  back-pressured ms per second from the REST metrics (the UDF is chained with the source, so its time shows in
  that vertex).
* exactly once: the lake must hold every record in bronze and every unique message in silver.
"""

from __future__ import annotations

import collections
import json
import os
import random
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from benchmarks.enrich import _sample_load, cpu_seconds
from connectors.iceberg import load_catalog
from connectors.kafka import client_config, produce_blocking
from connectors.topics import ensure_topics
from producers.contracts import iso_ms, mentions
from producers.synthetic_chat import ChatWriter
from twitch_pipeline.errors import wait_until
from twitch_pipeline.jobs import ACTIVE, find_active, submit
from twitch_pipeline.platform.flink import Flink
from twitch_pipeline.platform.lifecycle import isolated, running
from twitch_pipeline.settings import Settings, load_settings

MESSAGES = 100_000
CHANNELS = 50
MINUTES = 10
DUPLICATE_SHARE = 0.05
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def backlog(seed: int = 7) -> tuple[list[tuple[str, bytes]], int]:
    """(channel, record) in event-time order, duplicates included, and the number of unique messages."""
    rng = random.Random(seed)
    writer = ChatWriter(rng)
    channels = [(f"channel{c:03d}", str(100_000 + c)) for c in range(CHANNELS)]
    emotes = {login: writer.channel_emotes(login, user_id) for login, user_id in channels}
    recent: dict[str, collections.deque] = {login: collections.deque(maxlen=20) for login, _ in channels}
    records: list[tuple[str, bytes]] = []
    unique = 0
    step_ms = MINUTES * 60_000 / MESSAGES
    while len(records) < MESSAGES:
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


def produce(settings: Settings, records: list[tuple[str, bytes]]) -> float:
    producer = Producer(client_config(settings, **{"enable.idempotence": True, "linger.ms": 20, "compression.type": settings.producer_compression}))
    began = time.monotonic()
    for channel, value in records:
        produce_blocking(producer, "chat_messages", value, channel.encode())
        producer.poll(0)
    for minute in range(MINUTES):
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


def _cpu(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bounded_run(settings: Settings, job_name: str) -> dict[str, Any]:
    """Run ``job_name`` bounded; processing time from Flink's view, operator load and Python worker CPU sampled meanwhile."""
    flink = Flink(settings)
    taskmanager = flink.processes[1]
    samples: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)
    python_cpu: dict[int, float] = {}
    tm_cpu_before = cpu_seconds(taskmanager)
    began = time.monotonic()
    with ThreadPoolExecutor(1) as pool:
        submitted = pool.submit(submit, settings, job_name, ["--bounded"])
        while not wait([submitted], timeout=2).done:
            for pid in _python_workers(taskmanager.pid()):
                if (seconds := _cpu(pid)) is not None:
                    python_cpu[pid] = max(python_cpu.get(pid, 0.0), seconds)
            active = find_active(settings, job_name)
            if active is not None and active["state"] == "RUNNING":
                _sample_load(flink, active["id"], samples)
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
        "submit_wall_s": round(client_s, 1),
        "taskmanager_cpu_s": round(tm_cpu_s, 1),
        "python_worker_cpu_s": round(python_s, 1),
        "python_cpu_share": round(python_s / (python_s + tm_cpu_s), 3) if python_s + tm_cpu_s else None,
        "operator_load": {name[:100]: {"busy_ms_per_s": round(statistics.mean(b for b, _ in s)), "backpressured_ms_per_s": round(statistics.mean(p for _, p in s))}
                          for name, s in samples.items()},
    }


def lake_count(settings: Settings, table: str) -> int:
    handle = load_catalog(settings).load_table(f"{settings.iceberg_namespace}.{table}")
    return len(handle.scan(selected_fields=(handle.schema().fields[0].name,)).to_arrow())


def main() -> dict:
    base = isolated(load_settings(environ={}, dotenv=None), Path(tempfile.mkdtemp(prefix="bench-chat-")))
    records, unique = backlog()
    with running(base) as settings:
        ensure_topics(settings)
        produce_s = produce(settings, records)
        enrich = bounded_run(settings, "chat_enrich")
        aggregate = bounded_run(settings, "chat_aggregate")
        bronze, silver = lake_count(settings, "chat_bronze"), lake_count(settings, "chat_silver")
        gold = lake_count(settings, "chat_minute_stats")
    if (bronze, silver) != (len(records), unique):
        raise RuntimeError(f"not exactly once: bronze {bronze} of {len(records)} records, silver {silver} of {unique} unique messages")
    total_s = enrich["processing_s"] + aggregate["processing_s"]
    for result in (enrich, aggregate):
        result["messages_per_s"] = round(len(records) / result["processing_s"])
    return {
        "messages": len(records), "unique_messages": unique, "channels": CHANNELS, "minutes": MINUTES, "produce_s": round(produce_s, 1),
        "bronze_to_gold_messages_per_s": round(len(records) / total_s),
        "chat_enrich": enrich, "chat_aggregate": aggregate,
        "lake_rows": {"chat_bronze": bronze, "chat_silver": silver, "chat_minute_stats": gold},
        "cores": os.cpu_count(), "load_average_1m_at_end": os.getloadavg()[0],
    }
