"""The chat pipeline on real Kafka, Flink, Iceberg and ClickHouse: bronze, silver and gold, exactly once.

Both jobs run streaming (as `start` runs them), with the ClickHouse sink loading the chat outputs:

  known corpus    labelled Twitch-style lines in two channels; expected silver features, gold minute rows
                  (against known stream snapshots: messages and chatters per 1,000 viewers) and top emotes.
  hostile corpus  invalid JSON, invalid UTF-8, wrong types, missing fields, a 1 MB record, out-of-range emote
                  positions: each lands in bronze with its status and in dead_letter; emoji, right-to-left text,
                  zero-width joiners, SQL- and HTML-looking text are valid and reach silver.
  crash           kill -9 of the TaskManager between two halves of ten minutes of chat (with re-delivered
                  copies): bronze, silver and gold each hold every record, message and window exactly once.

Watermarks move with heartbeats, as in production: producers write them to chat_messages, chat_enrich relays
them to chat_silver, and the test writes them to game_streams_enriched as enrich_streams would.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import pytest
from confluent_kafka import Producer

from connectors.clickhouse import clickhouse_client
from connectors.iceberg import load_catalog
from connectors.kafka import client_config, partition_count
from connectors.migrations import apply_migrations
from connectors.sink.runner import run_sink
from connectors.topics import ensure_topics, heartbeat_keys
from producers.heartbeat import emit_heartbeats
from tests.kafka_io import read_committed, with_datetimes
from twitch_pipeline.errors import wait_until
from twitch_pipeline.jobs import cancel, find_active, submit
from twitch_pipeline.platform.flink import Flink
from twitch_pipeline.platform.lifecycle import running
from twitch_pipeline.settings import Settings

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=timezone.utc)
LATENESS_S = 60.0
JOBS = ("chat_enrich", "chat_aggregate")
CHAT_OUTPUTS = ("chat_silver", "chat_minute_stats", "chat_top_emotes")


def iso(seconds: float) -> str:
    moment = T0 + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def chat(message_id: str, channel: str, chatter: str, at: float, text: str, emotes: list[tuple[str, int, int]] = (), **extra) -> dict[str, Any]:
    return {"message_id": message_id, "channel": channel, "channel_id": f"id-{channel}", "chatter_id": chatter, "chatter_login": chatter,
            "chatter_name": chatter.title(), "text": text, "emotes": [{"id": name, "name": name, "begin": b, "end": e} for name, b, e in emotes],
            "badges": [], "reply_parent_message_id": None, "mentions": [], "sent_at": iso(at), "data_retrieved_at": iso(at + 0.2), **extra}


def snapshot(event_id: str, login: str, at: float, viewers: int) -> dict[str, Any]:
    return {"event_id": event_id, "stream_id": f"s-{login}", "user_id": f"id-{login}", "user_login": login, "user_name": login.title(),
            "game_id": "g1", "game_name": "Chess", "stream_type": "live", "title": f"{login} plays chess", "viewer_count": viewers,
            "started_at": iso(-3600), "language": "en", "is_mature": False, "tags": "", "broadcaster_type": "", "user_description": "",
            "user_created_at": None, "data_retrieved_at": iso(at)}


class Writer:
    """Chat the way producers write it; stream snapshots the way enrich_streams does (transactions, relayed heartbeats)."""

    def __init__(self, settings: Settings):
        self.producer = Producer(client_config(settings, **{"enable.idempotence": True, "linger.ms": 5, "message.max.bytes": 2_000_000}))
        self.streams = Producer(client_config(settings, **{"transactional.id": f"test-chat-streams-{uuid.uuid4()}"}))
        self.streams.init_transactions(30)
        self.stream_keys = heartbeat_keys(partition_count(settings, "game_streams_enriched"))
        self.sent = 0  # records written to chat_messages (heartbeats apart)

    def chat(self, items: list[dict | bytes], key: str = "chat") -> None:
        for item in items:
            value = item if isinstance(item, bytes) else json.dumps(item, ensure_ascii=False).encode()
            self.producer.produce("chat_messages", value, key=(item["channel"] if isinstance(item, dict) and "channel" in item else key).encode())
            self.sent += 1
        assert self.producer.flush(60) == 0

    def streams_and_heartbeats(self, snapshots: list[dict], heartbeat_at: float) -> None:
        self.streams.begin_transaction()
        for row in snapshots:
            self.streams.produce("game_streams_enriched", json.dumps(row).encode(), key=row["event_id"].encode())
        for partition, key in enumerate(self.stream_keys):
            self.streams.produce("game_streams_enriched", json.dumps({"event_id": key, "data_retrieved_at": iso(heartbeat_at)}).encode(),
                                 key=key.encode(), partition=partition)
        self.streams.commit_transaction(30)

    def heartbeat(self, at: float) -> None:
        """Moves every watermark to ``at`` - lateness: chat_messages (relayed to chat_silver) and game_streams_enriched."""
        emit_heartbeats(self.producer, ["chat_messages"], int((T0 + timedelta(seconds=at)).timestamp() * 1000))
        assert self.producer.flush(30) == 0
        self.streams_and_heartbeats([], at)

    def close_windows_up_to(self, at: float) -> None:
        """Two heartbeat rounds: the first is relayed by chat_enrich only once the second moves its watermark past it."""
        self.heartbeat(at)
        self.heartbeat(at + LATENESS_S + 5)


@pytest.fixture(scope="module")
def chat_pipeline(make_settings) -> Iterator[Settings]:
    settings = make_settings(watermark_lateness_s=LATENESS_S, sink_topics=",".join(CHAT_OUTPUTS), sink_batch_max_wait_s=0.5)
    with running(settings, ["kafka", "iceberg", "clickhouse", "flink"]) as settings:
        apply_migrations(settings)
        ensure_topics(settings)
        stop = threading.Event()
        sink = threading.Thread(target=run_sink, args=(settings, stop), daemon=True)
        sink.start()
        for job in JOBS:
            submit(settings, job)
        try:
            yield settings
        finally:
            for job in JOBS:
                try:
                    cancel(settings, job)
                except Exception:  # noqa: BLE001 - the platform goes down regardless
                    pass
            stop.set()
            sink.join(30)


def lake_rows(settings: Settings, table: str, columns: tuple[str, ...] | None = None) -> list[dict]:
    handle = load_catalog(settings).load_table(f"{settings.iceberg_namespace}.{table}")
    scan = handle.scan(selected_fields=columns) if columns else handle.scan()
    return scan.to_arrow().to_pylist()


def clickhouse(settings: Settings, sql: str) -> list[tuple]:
    with clickhouse_client(settings) as client:
        return client.query(sql).result_rows


# ------------------------------------------------------------------------------------------- known and hostile corpus
KNOWN = [
    chat("a1", "alpha", "c1", 5, "PogChamp what a play", [("PogChamp", 0, 7)]),
    chat("a2", "alpha", "c2", 10, "this is so sad Sadge"),
    chat("a3", "alpha", "c3", 20, "@c1 what rank is this?", mentions=["c1"], reply_parent_message_id="a1"),
    chat("a4", "alpha", "c1", 30, "Kappa Kappa", [("Kappa", 0, 4), ("Kappa", 6, 10)]),
    chat("a1", "alpha", "c1", 5, "PogChamp what a play", [("PogChamp", 0, 7)]),  # re-delivered: dropped
    chat("b1", "beta", "c4", 15, "W"),
    chat("b2", "beta", "c5", 75, "L"),
]
VALID_HOSTILE = {
    "h-emoji": chat("h-emoji", "beta", "c6", 16, "🔥🔥 LUL", [("LUL", 3, 5)]),
    "h-rtl": chat("h-rtl", "beta", "c6", 17, "مرحبا بالجميع"),
    "h-zwj": chat("h-zwj", "beta", "c6", 18, "👨‍👩‍👧\u200b family"),
    "h-sql": chat("h-sql", "beta", "c6", 19, "'; DROP TABLE chat_silver; --"),
    "h-html": chat("h-html", "beta", "c6", 20, "<script>alert('x')</script>"),
}
_bad = chat("x", "beta", "c7", 21, "bad")
MALFORMED: dict[str, tuple[bytes, str]] = {  # name -> (payload, expected status)
    "invalid JSON": (b'{"message_id": "broken', "PARSE_ERROR"),
    "invalid UTF-8": (json.dumps(_bad).encode().replace(b"bad", b"b\xff\xfed"), "PARSE_ERROR"),
    "1 MB": (json.dumps({**_bad, "text": "x" * 999_000}).encode(), "PARSE_ERROR"),
    "wrong types": (json.dumps({**_bad, "emotes": "Kappa", "mentions": 3}).encode(), "SCHEMA_ERROR"),
    "missing fields": (json.dumps({k: v for k, v in _bad.items() if k not in ("message_id", "sent_at")}).encode(), "SCHEMA_ERROR"),
    "emote out of range": (json.dumps({**_bad, "emotes": [{"id": "25", "name": "Kappa", "begin": 0, "end": 40}]}).encode(), "SCHEMA_ERROR"),
}
STREAMS = [snapshot("e1", "alpha", 10, 1000), snapshot("e2", "alpha", 40, 3000), snapshot("e3", "alpha", 70, 500)]


def test_known_and_hostile_corpus_through_bronze_silver_gold(chat_pipeline):
    settings = chat_pipeline
    writer = Writer(settings)
    writer.streams_and_heartbeats(STREAMS, 0)
    writer.chat(KNOWN[:5])
    writer.chat([payload for payload, _ in MALFORMED.values()] + list(VALID_HOSTILE.values()) + KNOWN[5:], key="beta")
    writer.close_windows_up_to(300)

    expected_ids = {"a1", "a2", "a3", "a4", "b1", "b2", *VALID_HOSTILE}
    silver = {r["message_id"]: r for r in read_committed(settings, "chat_silver", lambda rs: expected_ids <= {r["message_id"] for r in rs}, 300)}
    assert set(silver) == expected_ids, "each valid message once, the re-delivered a1 dropped"
    a1, a2, a3, a4 = (silver[m] for m in ("a1", "a2", "a3", "a4"))
    assert (a1["sentiment_label"], a1["emote_count"], a1["emote_names"], a1["is_emote_only"]) == ("positive", 1, "PogChamp", False)
    assert (a2["sentiment_label"], a2["emote_count"], a2["emote_names"]) == ("negative", 1, "Sadge"), "Sadge: a lexicon emote without a position"
    assert (a3["is_engagement"], a3["engagement_kinds"], a3["sentiment_label"]) == (True, "question,mention,reply", "neutral")
    assert (a4["emote_count"], a4["emote_ratio"], a4["is_emote_only"], a1["is_engagement"], a1["engagement_kinds"]) == (2, 1.0, True, False, "")
    assert silver["b1"]["sentiment"] > 0 > silver["b2"]["sentiment"], "W and L"
    assert (silver["h-emoji"]["emote_names"], silver["h-emoji"]["message_length"]) == ("LUL", 6), "positions count code points"
    assert all(silver[m]["text"] == VALID_HOSTILE[m]["text"] for m in VALID_HOSTILE)
    assert all(-1 <= r["sentiment"] <= 1 for r in silver.values())
    assert with_datetimes({"data_retrieved_at": a1["sent_at"]})["data_retrieved_at"] == T0 + timedelta(seconds=5)
    assert with_datetimes({"data_retrieved_at": a1["data_retrieved_at"]})["data_retrieved_at"] == T0 + timedelta(seconds=5.2)
    # Written once silver shows the watermark has passed t0+300 - lateness: far behind it, so late.
    writer.chat([chat("late-1", "alpha", "c1", -600, "so late")])

    dead = [d for d in read_committed(settings, "dead_letter", lambda rs: len(rs) >= len(MALFORMED), 120) if d["stage"] == "chat_enrich"]
    assert sorted(d["reason"].split(":")[0] for d in dead) == sorted(status for _, status in MALFORMED.values())
    assert all(d["source_topic"] == "chat_messages" and len(d["payload"]) <= settings.max_event_chars for d in dead)
    assert any("outside the text" in d["reason"] for d in dead) and any("invalid UTF-8" in d["reason"] for d in dead)

    late_rows = read_committed(settings, "late_events", lambda rs: any(r["event_id"] == "late-1" for r in rs), 120)
    assert [(r["stream_id"], r["reason"]) for r in late_rows if r["event_id"] == "late-1"] == [("alpha", "chat_late_for_dedup")]

    wanted = {("alpha", T0), ("beta", T0), ("beta", T0 + timedelta(minutes=1))}
    minutes = {(r["channel"], r["window_start"]): r for r in map(with_datetimes, read_committed(
        settings, "chat_minute_stats", lambda rs: wanted <= {(r["channel"], with_datetimes(r)["window_start"]) for r in rs}, 300))}
    alpha = minutes[("alpha", T0)]
    assert {k: alpha[k] for k in ("messages", "unique_chatters", "negative_messages", "neutral_messages", "positive_messages", "engagement_messages",
                                  "non_engagement_messages", "question_messages", "mention_messages", "reply_messages", "emote_only_messages", "emotes")} == {
        "messages": 4, "unique_chatters": 3, "negative_messages": 1, "neutral_messages": 2, "positive_messages": 1, "engagement_messages": 1,
        "non_engagement_messages": 3, "question_messages": 1, "mention_messages": 1, "reply_messages": 1, "emote_only_messages": 1, "emotes": 4}
    assert alpha["emote_only_share"] == 0.25
    assert (alpha["viewers_avg"], alpha["viewers_max"], alpha["game_name"], alpha["title"]) == (2000.0, 3000, "Chess", "alpha plays chess")
    assert (alpha["messages_per_1k_viewers"], alpha["chatters_per_1k_viewers"]) == (2.0, 1.5)
    beta = minutes[("beta", T0)]
    assert (beta["messages"], beta["unique_chatters"], beta["viewers_avg"], beta["messages_per_1k_viewers"]) == (6, 2, None, None), "no stream: no ratio"
    assert minutes[("beta", T0 + timedelta(minutes=1))]["messages"] == 1

    top = read_committed(settings, "chat_top_emotes", lambda rs: any(r["channel"] == "alpha" for r in rs), 120)
    assert sorted((r["rank_in_window"], r["emote"], r["uses"], r["chatters"]) for r in top if r["channel"] == "alpha") == [
        (1, "Kappa", 2, 1), (2, "PogChamp", 1, 1), (3, "Sadge", 1, 1)]

    # bronze: every record once, raw bytes as received, with its status; the late message is in it too
    wait_until(lambda: len(lake_rows(settings, "chat_bronze", ("kafka_offset",))) >= writer.sent, 120, "every chat record in lake.chat_bronze")
    bronze = lake_rows(settings, "chat_bronze")
    assert len(bronze) == writer.sent and len({(r["topic"], r["kafka_partition"], r["kafka_offset"]) for r in bronze}) == writer.sent
    by_payload = {r["raw_payload"]: r for r in bronze}
    for name, (payload, status) in MALFORMED.items():
        assert by_payload[payload]["parse_status"] == status and by_payload[payload]["parse_error"], name
    assert Counter(r["parse_status"] for r in bronze) == Counter({"OK": len(KNOWN) + len(VALID_HOSTILE) + 1, "PARSE_ERROR": 3, "SCHEMA_ERROR": 3})
    assert all(r["ingest_ts"] is not None and r["ingest_date"] is not None for r in bronze)

    wait_until(lambda: len(lake_rows(settings, "chat_silver", ("message_id",))) >= len(expected_ids), 120, "silver in the lake")
    assert sorted(r["message_id"] for r in lake_rows(settings, "chat_silver", ("message_id",))) == sorted(expected_ids)

    # the sink loads the chat outputs into ClickHouse, and the dashboard views read them
    wait_until(lambda: clickhouse(settings, "SELECT count() FROM chat_silver")[0][0] >= len(expected_ids), 120, "chat_silver in ClickHouse")
    assert clickhouse(settings, "SELECT count(), uniqExact(message_id) FROM chat_silver") == [(len(expected_ids), len(expected_ids))]
    wait_until(lambda: clickhouse(settings, "SELECT count() FROM chat_minute_stats WHERE channel = 'alpha'")[0][0] >= 1, 120, "gold in ClickHouse")
    assert clickhouse(settings, "SELECT messages_per_1k_viewers FROM dash_chat_now WHERE channel = 'alpha' OR channel = 'beta' ORDER BY channel")[:1] in (
        [(2.0,)], [(None,)])


def test_each_gold_view_is_planned_once_for_its_two_sinks(chat_pipeline):
    """The Kafka and the Iceberg INSERT of a view share one plan: the top emotes' UNNEST, window aggregate and
    Top-N run once (they ran twice, once per sink, before chat_aggregate.plan_once), as do the minute statistics."""
    settings = chat_pipeline
    active = find_active(settings, "chat_aggregate")
    assert active is not None, "chat_aggregate runs"
    plan = " ".join(node["description"] for node in Flink(settings).rest(f"/jobs/{active['id']}/plan")["plan"]["nodes"])
    assert plan.count("Correlate(") == 1 and plan.count("WindowRank(") == 1, "top emotes planned once"
    assert plan.count("GlobalWindowAggregate(groupBy=[channel, emote]") == 1 and plan.count("WindowJoin(") == 1


def test_silver_topic_is_sorted_on_the_dedup_second(chat_pipeline):
    """chat_aggregate's watermark trusts each chat_silver partition to be in event-time order within the lateness.
    Above parallelism 1 the dedup subtasks interleave in every partition, so the enrichment sorts on the dedup second
    before that sink (3,797 of 284,949 messages were late at parallelism 2 without it; docs/chat.md, session 8)."""
    active = find_active(chat_pipeline, "chat_enrich")
    assert active is not None, "chat_enrich runs"
    plan = " ".join(node["description"] for node in Flink(chat_pipeline).rest(f"/jobs/{active['id']}/plan")["plan"]["nodes"])
    assert "TemporalSort(orderBy=[row_time" in plan, plan[:2000]


# ------------------------------------------------------------------------------------------- crash
CRASH_CHANNELS, CRASH_MINUTES, PER_MINUTE, KILL_AFTER = 4, 10, 20, 5
CRASH_START = 3600.0  # an hour after the corpus above, so its windows are long closed


def crash_minute(minute: int) -> tuple[list[dict], list[dict]]:
    messages, streams = [], []
    for channel in range(CRASH_CHANNELS):
        login = f"crash{channel}"
        base = CRASH_START + minute * 60
        streams.append(snapshot(f"cs-{minute}-{channel}", login, base + 30, (channel + 1) * 1000))
        for n in range(PER_MINUTE):
            emotes = [("Kappa", 0, 4)] if n % 2 == 0 else []
            messages.append(chat(f"cm-{minute}-{channel}-{n}", login, f"u{n % 7}", base + n * 2.5, "Kappa hi" if emotes else "nice play", emotes))
    return messages, streams


def test_exactly_once_across_a_taskmanager_kill(chat_pipeline):
    settings = chat_pipeline
    writer = Writer(settings)
    bronze_before = len(lake_rows(settings, "chat_bronze", ("kafka_offset",)))
    expected: set[str] = set()

    def produce(minutes: range) -> None:
        for minute in minutes:
            messages, streams = crash_minute(minute)
            writer.streams_and_heartbeats(streams, CRASH_START + minute * 60)
            writer.chat(messages + messages[::10])  # a tenth re-delivered
            expected.update(m["message_id"] for m in messages)

    produce(range(KILL_AFTER))
    writer.heartbeat(CRASH_START + KILL_AFTER * 60)
    read_committed(settings, "chat_silver", lambda rs: any(r["message_id"].startswith("cm-") for r in rs), 300)
    flink = Flink(settings)
    flink.processes[1].kill()  # kill -9 the TaskManager
    produce(range(KILL_AFTER, CRASH_MINUTES))
    flink.start()
    flink.wait_healthy()
    writer.close_windows_up_to(CRASH_START + (CRASH_MINUTES + 2) * 60)

    silver = [r["message_id"] for r in read_committed(settings, "chat_silver", lambda rs: expected <= {r["message_id"] for r in rs}, 600)]
    crash_ids = [m for m in silver if m.startswith("cm-")]
    assert len(crash_ids) == len(set(crash_ids)) == len(expected), f"{len(crash_ids) - len(set(crash_ids))} duplicates in chat_silver"

    windows = {(T0 + timedelta(seconds=CRASH_START + m * 60), f"crash{c}") for m in range(CRASH_MINUTES) for c in range(CRASH_CHANNELS)}
    rows = [with_datetimes(r) for r in read_committed(
        settings, "chat_minute_stats", lambda rs: windows <= {(with_datetimes(r)["window_start"], r["channel"]) for r in rs}, 600)]
    crash_rows = Counter((r["window_start"], r["channel"], r["messages"], r["viewers_max"]) for r in rows if r["channel"].startswith("crash"))
    assert sorted(crash_rows.elements()) == sorted((t, login, PER_MINUTE, (int(login[-1]) + 1) * 1000) for t, login in windows), \
        "each (minute, channel) once, with every message counted once"
    def crash_top(records: list[dict]) -> Counter:
        return Counter((with_datetimes(r)["window_start"], r["channel"], r["rank_in_window"]) for r in records if r["channel"].startswith("crash"))

    # each sink commits its own transaction at a checkpoint: wait for this one's too
    top = crash_top(read_committed(settings, "chat_top_emotes", lambda rs: {(t, c) for t, c, _ in crash_top(rs)} >= windows, 120))
    assert set(top.values()) == {1} and {(t, c) for t, c, _ in top} == windows, "each (minute, channel, rank) once"

    def lake_crash_ids() -> list[str]:
        return [m for m in (r["message_id"] for r in lake_rows(settings, "chat_silver", ("message_id",))) if m.startswith("cm-")]

    wait_until(lambda: len(lake_crash_ids()) >= len(expected), 120, "crash messages in lake.chat_silver")
    assert sorted(lake_crash_ids()) == sorted(expected), "lake.chat_silver holds each message once"
    wait_until(lambda: len(lake_rows(settings, "chat_bronze", ("kafka_offset",))) >= bronze_before + writer.sent, 120, "every record in bronze")
    bronze = lake_rows(settings, "chat_bronze", ("topic", "kafka_partition", "kafka_offset"))
    keys = {(r["topic"], r["kafka_partition"], r["kafka_offset"]) for r in bronze}
    assert len(bronze) == len(keys) == bronze_before + writer.sent, "bronze holds every record once across the crash"
    wait_until(lambda: clickhouse(settings, "SELECT count() FROM chat_minute_stats WHERE channel LIKE 'crash%'")[0][0] >= len(windows), 120, "crash gold in ClickHouse")
    assert clickhouse(settings, "SELECT count(), uniqExact(window_start, channel) FROM chat_minute_stats WHERE channel LIKE 'crash%'") == [(len(windows), len(windows))]
