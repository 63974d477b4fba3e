"""Producer logic without a broker: fault proportions, contracts, counting, heartbeats, chat mapping (Helix: test_helix.py).

The same paths run against real Kafka, Helix and chat servers in tests/integration/test_*producer*/chat*.
"""

from __future__ import annotations

import dataclasses
import json
import random
from types import SimpleNamespace

import pytest

from producers.contracts import (
    MAX_EVENT_BYTES,
    iso_ms,
    mentions,
    parse_iso_ms,
    stream_event_id,
    violations,
)
from producers.faults import (
    DUPLICATE,
    MALFORMED,
    MALFORMED_KINDS,
    UNIQUE,
    FaultPlan,
    malformed_value,
)
from producers.heartbeat import HEARTBEAT_KEY
from producers.publisher import Publisher
from producers.run import RunOptions, run
from producers.synthetic import World
from twitch_pipeline.settings import load_settings

START = parse_iso_ms("2026-11-21T11:05:00.000Z")


class FakeProducer:
    """Records what would go to Kafka; ``fail`` makes delivery reports fail for a topic."""

    def __init__(self, partitions: int = 2, fail: str | None = None):
        self.records: list[tuple[str, bytes, bytes, int | None]] = []
        self.partitions = partitions
        self.fail = fail
        self.config: dict = {}
        self._pending = []

    def __call__(self, config: dict) -> "FakeProducer":  # stands in for confluent_kafka.Producer(config)
        self.config = config
        return self

    def produce(self, topic, value=None, key=None, partition=None):
        self.records.append((topic, key, value, partition))
        self._pending.append((topic, key))

    def poll(self, timeout=0):
        pending, self._pending = self._pending, []
        for topic, key in pending:
            err = SimpleNamespace(str=lambda: "Broker: Message size too large") if topic == self.fail else None
            self.config["on_delivery"](err, SimpleNamespace(topic=lambda t=topic: t, key=lambda k=key: k))
        return len(pending)

    def flush(self, timeout=0):
        self.poll()
        return 0

    def list_topics(self, timeout=0):
        parts = {p: None for p in range(self.partitions)}
        return SimpleNamespace(topics={t: SimpleNamespace(error=None, partitions=parts)
                                       for t in ("game_streams", "twitch_users", "twitch_games", "chat_messages")})


@pytest.fixture
def settings():
    return dataclasses.replace(load_settings(environ={}, dotenv=None), synthetic_channels=300, synthetic_games=60)


def bounded_run(settings, fake, **options):
    return run(settings, RunOptions(start_ms=START, **options), out=None, producer_factory=fake)


# -- contracts ------------------------------------------------------------------------------------------
def test_timestamps_ids_and_mentions():
    assert iso_ms(START) == "2026-11-21T11:05:00.000Z" and iso_ms(START + 7) == "2026-11-21T11:05:00.007Z"
    assert parse_iso_ms(iso_ms(START + 123)) == START + 123
    assert stream_event_id("1", iso_ms(START)) == stream_event_id("1", iso_ms(START)) != stream_event_id("1", iso_ms(START + 1))
    assert mentions("@Foo hi @bar and @foo, mail a@b.c") == ["foo", "bar"]


# -- faults ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("total,dups,bad", [(10_000, 0.1, 0.05), (997, 0.33, 0.0), (50, 0.0, 0.2), (1, 0.5, 0.4)])
def test_fault_plan_is_exact(total, dups, bad):
    plan = FaultPlan(random.Random(1), total, dups, bad)
    kinds = [plan.next(can_fault=i > 0) for i in range(total)]
    assert plan.exhausted and kinds[0] == UNIQUE
    expected_dups, expected_bad = (round(total * dups), round(total * bad)) if total > 1 else (0, 0)
    assert kinds.count(DUPLICATE) == expected_dups and kinds.count(MALFORMED) == expected_bad
    assert kinds.count(UNIQUE) == total - expected_dups - expected_bad
    if total >= 1000:  # spread over the run, not bunched at one end
        first_half = kinds[: total // 2]
        assert abs(first_half.count(DUPLICATE) - expected_dups / 2) < 0.2 * expected_dups


def test_fault_plan_rejects_impossible_fractions():
    with pytest.raises(ValueError):
        FaultPlan(random.Random(1), 10, 0.6, 0.5)
    with pytest.raises(ValueError):
        FaultPlan(random.Random(1), 10, 1.0, 0.0)


def test_every_malformed_kind_breaks_the_contract():
    rng = random.Random(5)
    events = {}
    for topic, event, _ in World(2, START, channels=200, games=40).events():
        events.setdefault(topic, event)
        if len(events) == 4:
            break
    seen = set()
    for _ in range(400):
        topic = rng.choice(sorted(events))
        kind, value = malformed_value(rng, topic, events[topic])
        seen.add(kind)
        if kind == "oversized":
            assert len(value) > MAX_EVENT_BYTES
            continue
        try:
            decoded = json.loads(value.decode("utf-8"))
        except UnicodeDecodeError:
            assert kind == "invalid_utf8"
            continue
        except json.JSONDecodeError:
            assert kind == "invalid_json"
            continue
        assert violations(topic, decoded), (kind, decoded)
    assert seen == set(MALFORMED_KINDS)


# -- publisher and run ------------------------------------------------------------------------------------
def test_bounded_run_counts_and_ends_with_heartbeats(settings):
    fake = FakeProducer(partitions=3)
    result = bounded_run(settings, fake, events=5000, duplicates=0.1, malformed=0.04, seed=9)
    assert result.ok and result.sent == 5000
    events = [r for r in fake.records if r[1] != HEARTBEAT_KEY]
    assert len(events) == 5000
    for topic, stats in result.summary.items():
        assert stats["sent"] == stats["unique"] + stats["duplicates"] + stats["malformed"]
        assert stats["sent"] == sum(1 for r in events if r[0] == topic)
    assert sum(s["duplicates"] for s in result.summary.values()) == 500
    assert sum(s["malformed"] for s in result.summary.values()) == 200
    partitions = sorted((t, p) for t in result.summary for p in range(3))
    last, final = fake.records[-2 * len(partitions):-len(partitions)], fake.records[-len(partitions):]
    for drain_round, horizons in ((last, 1), (final, 2)):
        assert all(r[1] == HEARTBEAT_KEY for r in drain_round)
        assert sorted((r[0], r[3]) for r in drain_round) == partitions
        assert {json.loads(r[2])["data_retrieved_at"] for r in drain_round} == {iso_ms(result.max_event_time_ms + horizons * 180_000)}


def test_faults_do_not_change_the_world(settings):
    """Duplicates and malformed events come on top: the valid events of a seed stay the same."""
    clean, faulty = FakeProducer(), FakeProducer()
    bounded_run(settings, clean, events=2000, seed=4)
    bounded_run(settings, faulty, events=2600, duplicates=0.15, malformed=0.08, seed=4)
    clean_values = [r[2] for r in clean.records if r[1] != HEARTBEAT_KEY]
    first_seen = dict.fromkeys(r[2] for r in faulty.records if r[1] != HEARTBEAT_KEY and not is_broken(r[0], r[2]))
    assert list(first_seen)[:2000] == clean_values


def is_broken(topic: str, value: bytes) -> bool:
    try:
        return len(value) > MAX_EVENT_BYTES or bool(violations(topic, json.loads(value.decode())))
    except ValueError:  # JSON or UTF-8 errors
        return True


def test_contract_breaking_event_goes_to_dead_letter(settings):
    fake = FakeProducer()
    publisher = Publisher(settings, FaultPlan(random.Random(1), None, 0, 0), random.Random(1), validate=True, producer_factory=fake)
    assert publisher.publish("twitch_games", {"game_id": "1", "name": "X"}, START)
    topic, key, value, _ = fake.records[-1]
    assert topic == "producer_dead_letter" and key == b"twitch_games"
    assert any("box_art_url" in e for e in json.loads(value)["errors"])
    assert publisher.summary()["twitch_games"]["rejected"] == 1 and publisher.summary()["twitch_games"]["sent"] == 0


def test_delivery_failures_are_counted_never_dropped(settings):
    fake = FakeProducer(fail="chat_messages")
    result = bounded_run(settings, fake, events=1500, seed=2)
    chat = result.summary["chat_messages"]
    assert chat["failed"] == chat["sent"] > 0 and not result.ok
    assert result.summary["game_streams"]["failed"] == 0


def test_rate_cap_is_respected(settings):
    result = bounded_run(settings, FakeProducer(), events=300, seed=1, rate=1000)
    assert result.elapsed_s >= 0.29


# -- chat mapping -------------------------------------------------------------------------------------------
def test_chat_message_mapping_uses_twitch_positions():
    from twitchAPI.chat import Chat, ChatMessage

    from producers.chat import chat_event

    line = ("@badge-info=subscriber/14;badges=subscriber/12,premium/1;color=#1E90FF;display-name=Some_One;"
            "emotes=25:0-4,12-16/305954156:18-25;first-msg=0;id=b34ccfc7-4977-403a-8a94-33c6bac34fb8;mod=0;"
            "reply-parent-msg-id=6b13e51b-7ecb-43b5-ba5b-2bb5288df696;room-id=1337;subscriber=1;"
            "tmi-sent-ts=1795000000123;turbo=0;user-id=98765;user-type= "
            ":some_one!some_one@some_one.tmi.twitch.tv PRIVMSG #bigstreamer :Kappa hello Kappa PogChamp @friend_1 wow")
    chat = Chat.__new__(Chat)  # only the IRC parser is needed, not a connection
    chat._prefix, chat._channel_command_prefix, chat.logger, chat.username = "!", {}, None, "bot"
    message = ChatMessage(chat, chat._parse_irc_message(line))
    event = chat_event(message, 1795000000500)
    assert event["channel"] == "bigstreamer" and event["channel_id"] == "1337"
    assert (event["chatter_id"], event["chatter_login"], event["chatter_name"]) == ("98765", "some_one", "Some_One")
    assert [(e["name"], e["begin"], e["end"]) for e in event["emotes"]] == [("Kappa", 0, 4), ("Kappa", 12, 16), ("PogChamp", 18, 25)]
    assert event["badges"] == [{"set_id": "subscriber", "id": "12"}, {"set_id": "premium", "id": "1"}]
    assert event["mentions"] == ["friend_1"] and event["reply_parent_message_id"] == "6b13e51b-7ecb-43b5-ba5b-2bb5288df696"
    assert event["sent_at"] == "2026-11-18T11:06:40.123Z"
    assert not violations("chat_messages", event)
