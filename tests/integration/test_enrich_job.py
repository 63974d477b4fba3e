"""The enrichment job on a real platform: known answers, dead letters, late events, and a TaskManager crash.

Runs the streaming job (not bounded): lateness is only observable while the job runs, and the drain
relies on heartbeats advancing watermarks on every partition, as it does in production.

The allowed lateness (LATENESS_S) exceeds the whole spread of the known-answer events (0..180 s), so
whether a record is late never depends on how the source happens to interleave partitions or when it
emits its periodic watermark: only the one deliberately late event (ten minutes behind) is late.
"""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import pytest
from confluent_kafka import Producer

from connectors.iceberg import METADATA_FILE_PROPERTIES, load_catalog
from connectors.kafka import client_config, partition_count
from producers.heartbeat import emit_heartbeats
from tests.kafka_io import read_committed
from twitch_pipeline.errors import wait_until
from twitch_pipeline.jobs import cancel, submit
from twitch_pipeline.platform.flink import Flink
from twitch_pipeline.platform.lifecycle import down, up

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=timezone.utc)
DIMENSION_TOPICS = ("twitch_users", "twitch_games")
INPUT_TOPICS = ("game_streams", *DIMENSION_TOPICS)
LATENESS_S = 300.0


def ts(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_ts(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


def user(user_id: str, at: float, broadcaster_type: str, description: str) -> dict[str, Any]:
    return {"user_id": user_id, "login": f"login-{user_id}", "display_name": f"Name-{user_id}", "broadcaster_type": broadcaster_type,
            "description": description, "created_at": "2019-05-01T12:00:00.000Z", "data_retrieved_at": ts(at)}


def game(game_id: str, name: str) -> dict[str, Any]:
    return {"game_id": game_id, "name": name, "box_art_url": "", "igdb_id": "", "data_retrieved_at": ts(-3600)}


def snapshot(event_id: str, stream_id: str, user_id: str, game_id: str, at: float, viewers: int) -> dict[str, Any]:
    return {"event_id": event_id, "stream_id": stream_id, "user_id": user_id, "user_login": f"login-{user_id}",
            "user_name": f"Name-{user_id}", "game_id": game_id, "game_name": f"event-name-{game_id}", "stream_type": "live",
            "title": f"title {stream_id}", "viewer_count": viewers, "started_at": ts(-7200), "language": "en",
            "is_mature": stream_id == "s2", "tags": ["English", "Chill"], "data_retrieved_at": ts(at)}


class Topics:
    """Writes JSON (or raw bytes) to the job's input topics and reads its committed output."""

    def __init__(self, settings):
        self.settings = settings
        self.producer = Producer(client_config(settings, **{"enable.idempotence": True, "linger.ms": 5}))
        self.relayed: set[tuple[int, str]] = set()  # (partition, data_retrieved_at) of heartbeats read from outputs

    def send(self, topic: str, key: str, value: dict | bytes) -> None:
        payload = value if isinstance(value, bytes) else json.dumps(value).encode()
        self.producer.produce(topic, payload, key=key.encode())

    def flush(self) -> None:
        assert self.producer.flush(30) == 0

    def heartbeat(self, at: float) -> None:
        emit_heartbeats(self.producer, INPUT_TOPICS, int((T0 + timedelta(seconds=at)).timestamp() * 1000))
        self.flush()

    def read_committed(self, topic: str, done: Callable[[list[dict]], bool], timeout_s: float = 300) -> list[dict]:
        """Every committed record of ``topic`` once ``done(records)``; relayed heartbeats are noted apart."""
        heartbeats: list[tuple[int, dict]] = []
        records = read_committed(self.settings, topic, done, timeout_s, heartbeats)
        self.relayed |= {(partition, value["data_retrieved_at"]) for partition, value in heartbeats}
        return records


# Parallelism 2 splits every stage in two (the temporal sort before the output stays one): it found rows dropped
# after a TaskManager crash that parallelism 1 never showed (window-timed rows, flink_jobs/sql/enrich_streams.sql).
@pytest.fixture(scope="module", params=[1, 2], ids=["parallelism_1", "parallelism_2"])
def enrich_job(make_settings, request) -> Iterator[tuple[Any, Topics]]:
    """A platform of its own (its topics carry only this module's data) with the enrichment job running."""
    settings = make_settings(watermark_lateness_s=LATENESS_S, flink_parallelism=request.param)
    try:
        up(settings, echo=lambda _: None)
        topics = Topics(settings)
        for item in (user("u1", -3600, "partner", "old bio"), user("u2", -3600, "affiliate", "bio 2"), user("u1", 90, "affiliate", "new bio")):
            topics.send("twitch_users", item["user_id"], item)
        for item in (game("g1", "Alpha"), game("g2", "Beta")):
            topics.send("twitch_games", item["game_id"], item)
        topics.flush()
        submit(settings, "enrich_streams")
        yield settings, topics
    finally:
        try:
            cancel(settings, "enrich_streams")
        except Exception:  # noqa: BLE001 - the platform goes down regardless
            pass
        down(settings, echo=lambda _: None)


def test_dedup_join_dead_letters_and_late_events(enrich_job):
    settings, topics = enrich_job
    streams = [
        snapshot("a0", "s1", "u1", "g1", 0, 100),
        snapshot("a1", "s1", "u1", "g1", 60, 110),
        snapshot("a0", "s1", "u1", "g1", 0, 100),          # exact duplicate: same event_id
        snapshot("a1-again", "s1", "u1", "g1", 60, 999),   # same (stream_id, data_retrieved_at), other id
        snapshot("a2", "s1", "u1", "g1", 120, 120),        # after u1's profile changed (t0+90)
        snapshot("a3", "s1", "u1", "g1", 180, 130),
        snapshot("b1", "s2", "u2", "g2", 90, 50),
        snapshot("b0", "s2", "u2", "g2", 75, 40),          # out of order (behind a3 at 180), within the lateness
        snapshot("c0", "s3", "u3", "g3", 60, 7),           # profile and game never arrive
    ]
    for item in streams:
        topics.send("game_streams", item["stream_id"], item)
    bad = snapshot("x", "s9", "u1", "g1", 60, 1)
    malformed = {
        "invalid JSON": b'{"event_id": "broken',
        "missing or invalid stream_id": json.dumps({k: v for k, v in bad.items() if k != "stream_id"}).encode(),
        "missing or invalid viewer_count": json.dumps({**bad, "viewer_count": "many"}).encode(),
        # the contract's types, not only presence: ids sent as JSON numbers once passed as valid (chaos run)
        "missing or invalid event_id": json.dumps({**bad, "event_id": 32, "stream_id": 11}).encode(),
        "missing or invalid title": json.dumps({**bad, "title": 5}).encode(),
        "missing or invalid language": json.dumps({k: v for k, v in bad.items() if k != "language"}).encode(),
        "invalid UTF-8": json.dumps(bad).encode().replace(b"title", b"ti\xff\xfele"),
        "oversized": json.dumps({**bad, "title": "x" * (settings.max_event_chars + 1)}).encode(),
    }
    for payload in malformed.values():
        topics.send("game_streams", "s9", payload)
    topics.heartbeat(600)

    enriched = {r["event_id"]: r for r in topics.read_committed("game_streams_enriched", lambda rs: len({r["event_id"] for r in rs}) >= 7)}
    assert sorted(enriched) == ["a0", "a1", "a2", "a3", "b0", "b1", "c0"]
    assert enriched["a1"]["viewer_count"] == 110, "the first arrival of a snapshot wins"
    profile = {eid: (enriched[eid]["broadcaster_type"], enriched[eid]["user_description"]) for eid in ("a0", "a1", "a2", "a3")}
    assert profile == {"a0": ("partner", "old bio"), "a1": ("partner", "old bio"), "a2": ("affiliate", "new bio"), "a3": ("affiliate", "new bio")}
    assert (enriched["b0"]["game_name"], enriched["b0"]["broadcaster_type"], enriched["b0"]["is_mature"]) == ("Beta", "affiliate", True)
    missing = enriched["c0"]
    assert (missing["broadcaster_type"], missing["user_description"], missing["user_created_at"]) == (None, None, None)
    assert missing["game_name"] == "event-name-g3", "an unknown game keeps the name the event carried"
    assert (missing["user_login"], missing["viewer_count"]) == ("login-u3", 7)
    first = enriched["a0"]
    assert parse_ts(first["data_retrieved_at"]) == T0 and parse_ts(first["started_at"]) == T0 - timedelta(hours=2)
    assert parse_ts(first["user_created_at"]) == datetime(2019, 5, 1, 12, tzinfo=timezone.utc)
    assert (first["tags"], first["game_name"], first["stream_type"]) == ("English,Chill", "Alpha", "live")

    dead = topics.read_committed("dead_letter", lambda rs: len(rs) >= len(malformed))
    assert sorted(d["reason"] for d in dead) == sorted(malformed)
    assert all(d["source_topic"] == "game_streams" and d["source_offset"] >= 0 for d in dead)

    late = snapshot("late-1", "s4", "u1", "g1", -600, 5)  # far behind the watermark, now at t0+600-LATENESS_S
    topics.send("game_streams", "s4", late)
    topics.flush()
    late_rows = topics.read_committed("late_events", lambda rs: len(rs) >= 1)
    assert [(r["event_id"], r["stream_id"], r["reason"]) for r in late_rows] == [("late-1", "s4", "late")]

    table = load_catalog(settings).load_table(f"{settings.iceberg_namespace}.game_streams_enriched")

    def lake_has_all() -> bool:
        table.refresh()
        return len(table.scan(selected_fields=("event_id",)).to_arrow()) >= 7

    wait_until(lake_has_all, 120, "enriched rows committed to Iceberg")
    lake = {r["event_id"]: r for r in table.scan().to_arrow().to_pylist()}
    assert sorted(lake) == sorted(enriched)
    assert lake["a2"]["broadcaster_type"] == "affiliate" and lake["a2"]["retrieved_date"].isoformat() == "2026-11-21"
    # Written through jvm/'s LocalFileSystem (the cluster's fs.file.impl): no Hadoop checksum file beside any lake file.
    files = [f.name for f in Path(urlsplit(table.location()).path).rglob("*") if f.is_file()]
    assert any(name.endswith(".parquet") for name in files) and not [name for name in files if name.endswith(".crc")]
    # Made by the job's SQL with the lake's properties, so that each commit deletes all but the last metadata files
    # (measured in docs/performance.md, session 11: without them, one more file per checkpoint, each larger).
    assert {k: table.properties.get(k) for k in METADATA_FILE_PROPERTIES} == METADATA_FILE_PROPERTIES


def test_transactional_ids_do_not_grow_with_checkpoints(enrich_job):
    # The broker keeps every transactional id it has seen for 7 days. The connector's default naming takes a new
    # one per checkpoint and sink writer: with all four jobs at 1 s checkpoints, ~15 more a second (1,710 after
    # 90 s, measured), against 15 in all with POOLING (flink_jobs/runtime.py), whose pool holds an id per
    # transaction not yet committed: one or two per writer.
    settings, _ = enrich_job
    flink = Flink(settings)
    job_id = next(j["jid"] for j in flink.rest("/jobs/overview")["jobs"] if j["name"] == "enrich_streams" and j["state"] == "RUNNING")

    def completed() -> int:
        return flink.rest(f"/jobs/{job_id}/checkpoints")["counts"]["completed"]

    wait_until(lambda: completed() >= 2, 120, "two checkpoints of enrich_streams")
    since = completed()
    wait_until(lambda: completed() >= since + 10, 120, "ten more checkpoints of enrich_streams")
    ids = {i for i in transactional_ids(settings) if i.startswith("twitch-pipeline-enrich_streams-")}
    writers = {i.rsplit("-", 1)[0] for i in ids}  # an id is <prefix>-<subtask>-<number>
    assert writers and len(ids) <= 3 * len(writers), f"{len(ids)} transactional ids for {len(writers)} writers: {sorted(ids)}"


def transactional_ids(settings) -> set[str]:
    out = subprocess.run(["java", "-cp", str(settings.jars_dir / "kafka" / "*"), str(Path(__file__).parent / "TransactionalIds.java"),
                          settings.bootstrap_servers], capture_output=True, text=True, timeout=120, check=True)
    return set(out.stdout.split())


def test_exactly_once_across_a_taskmanager_crash(enrich_job):
    settings, topics = enrich_job
    flink = Flink(settings)
    expected: set[str] = set()

    def produce_polls(first: int, last: int) -> None:
        for poll in range(first, last):
            for stream in range(100):
                event_id = f"crash-{poll}-{stream}"
                expected.add(event_id)
                topics.send("game_streams", f"cs{stream}", snapshot(event_id, f"cs{stream}", "u2", "g2", 1200 + poll * 60, poll))
        topics.flush()

    produce_polls(0, 10)
    topics.heartbeat(1200 + 10 * 60)  # as producers do continuously: moves every topic's watermark, dimensions included
    topics.read_committed("game_streams_enriched", lambda rs: any(r["event_id"].startswith("crash-") for r in rs))
    taskmanager = flink.processes[1]
    taskmanager.kill()
    produce_polls(10, 20)
    flink.start()  # restarts only the dead TaskManager; the job recovers from its last checkpoint
    flink.wait_healthy()
    topics.heartbeat(1200 + 40 * 60)

    rows = topics.read_committed("game_streams_enriched", lambda rs: expected <= {r["event_id"] for r in rs}, timeout_s=300)
    late = topics.read_committed("late_events", lambda rs: True)
    assert not [r for r in late if r["event_id"].startswith("crash-")], "recovery replay must not be classed as late"
    crash_ids = [r["event_id"] for r in rows if r["event_id"].startswith("crash-")]
    assert len(crash_ids) == len(expected), f"{len(crash_ids) - len(set(crash_ids))} duplicates after recovery"
    assert set(crash_ids) == expected

    table = load_catalog(settings).load_table(f"{settings.iceberg_namespace}.game_streams_enriched")

    def lake_crash_ids() -> list[str]:
        table.refresh()
        return [e for e in table.scan(selected_fields=("event_id",)).to_arrow().column("event_id").to_pylist() if e.startswith("crash-")]

    wait_until(lambda: len(lake_crash_ids()) >= len(expected), 120, "crash-test rows committed to Iceberg")
    assert sorted(lake_crash_ids()) == sorted(expected), "the lake, too, holds every row exactly once"
    # the heartbeat at 1800 s left the join (the one at 3600 s moved the watermark past it) and was relayed to
    # every partition of the output, carrying the output's watermark at that point: jobs reading it drain too
    relayed_to = {partition for partition, at in topics.relayed if T0 + timedelta(seconds=1200) < parse_ts(at) <= T0 + timedelta(seconds=1800)}
    assert relayed_to == set(range(partition_count(settings, "game_streams_enriched")))
