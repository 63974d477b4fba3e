"""The synthetic Twitch: reproducible, contract-valid, and shaped like the real one."""

from __future__ import annotations

import itertools
import json
import statistics
from collections import Counter

import pytest

from producers.contracts import encode, iso_ms, parse_iso_ms, violations
from producers.synthetic import BROADCASTER_TYPES, World

START = parse_iso_ms("2026-11-21T11:05:00.000Z")


def take(world: World, n: int):
    return list(itertools.islice(world.events(), n))


@pytest.fixture(scope="module")
def sample():
    """About 35 simulated minutes of a default-sized world."""
    world = World(7, START)
    return world, take(world, 60_000)


def test_same_seed_and_start_give_the_same_events():
    assert take(World(3, START, channels=400), 4000) == take(World(3, START, channels=400), 4000)
    assert take(World(3, START, channels=400), 500) != take(World(4, START, channels=400), 500)
    shifted = take(World(3, START + 60_000, channels=400), 500)
    assert shifted != take(World(3, START, channels=400), 500)


def test_events_encode_as_compact_utf8_json(sample):
    """The producer's orjson encoding writes what the standard library's compact, non-ASCII form does."""
    _, events = sample
    for _, event, _ in events[:20_000]:
        assert encode(event) == json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    assert iso_ms(START + 999) == "2026-11-21T11:05:00.999Z" and iso_ms(START - 1) == "2026-11-21T11:04:59.999Z"


def test_every_event_honours_its_contract(sample):
    _, events = sample
    bad = [(topic, violations(topic, event)) for topic, event, _ in events if violations(topic, event)]
    assert not bad, bad[:3]


def test_event_time_never_goes_backwards(sample):
    _, events = sample
    times = [t for _, _, t in events]
    assert times == sorted(times)
    assert times[0] == START


def test_every_topic_in_realistic_proportions(sample):
    _, events = sample
    counts = Counter(topic for topic, _, _ in events)
    assert 0.6 < counts["chat_messages"] / counts["game_streams"] < 2.0  # Twitch: chat msgs/s ~ stream snapshots/s
    assert 0.01 < counts["twitch_users"] / counts["game_streams"] < 0.2
    assert 50 < counts["twitch_games"] < counts["twitch_users"]


def test_viewers_are_heavy_tailed(sample):
    _, events = sample
    viewers = sorted(e["viewer_count"] for t, e, _ in events if t == "game_streams")
    total = sum(viewers)
    median = statistics.median(viewers)
    assert median < 20 < statistics.mean(viewers)  # mean far above median
    assert sum(viewers[-len(viewers) // 100 :]) / total > 0.25  # top 1 % of snapshots hold over a quarter of viewers
    assert viewers[-1] > 100 * max(median, 1)


def test_games_follow_a_zipf_like_law(sample):
    _, events = sample
    per_game = Counter(e["game_id"] for t, e, _ in events if t == "game_streams")
    ranked = [n for _, n in per_game.most_common()]
    assert ranked[0] > 5 * ranked[len(ranked) // 2]
    assert sum(ranked[:10]) / sum(ranked) > 0.3


def test_channel_mix_languages_maturity_and_types(sample):
    world, _ = sample
    channels = world.channels
    languages = Counter(c.language for c in channels)
    assert languages.most_common(1)[0][0] == "en" and 0.33 < languages["en"] / len(channels) < 0.47
    assert 0.10 < sum(c.mature for c in channels) / len(channels) < 0.20
    types = Counter(c.broadcaster_type for c in channels)
    for btype, share, _ in BROADCASTER_TYPES:
        assert abs(types[btype] / len(channels) - share) < 0.03


def test_stream_durations_and_start_times(sample):
    world, events = sample
    started = {e["stream_id"]: parse_iso_ms(e["started_at"]) for t, e, _ in events if t == "game_streams"}
    last_seen: dict[str, int] = {}
    for t, e, ts in events:
        if t == "game_streams":
            last_seen[e["stream_id"]] = ts
    live_now = len(world.live)
    assert 0.25 * len(world.channels) < live_now < 0.42 * len(world.channels)
    ages_h = [(START - s) / 3_600_000 for s in started.values() if s <= START]
    assert 0.5 < statistics.median(ages_h) < 3.0  # streams live at the start began at various times
    new = [s for s in started.values() if s > START]
    assert new, "streams start during the run"
    ended = [sid for sid, last in last_seen.items() if last < world.now_ms - world.interval_ms]
    assert ended, "streams end during the run"


def test_profiles_precede_snapshots_except_a_late_few(sample):
    world, events = sample
    first_profile, first_snapshot = {}, {}
    for topic, event, ts in events:
        if topic == "twitch_users":
            first_profile.setdefault(event["user_id"], ts)
        elif topic == "game_streams":
            first_snapshot.setdefault(event["user_id"], ts)
    late = [u for u, ts in first_snapshot.items() if first_profile.get(u, float("inf")) > ts]
    assert 0 < len(late) < 0.05 * len(first_snapshot)
    versions = Counter(e["user_id"] for t, e, _ in events if t == "twitch_users")
    assert any(n > 1 for n in versions.values()), "some profiles change mid-stream"


def test_games_precede_the_snapshots_that_reference_them(sample):
    _, events = sample
    published = set()
    for topic, event, _ in events:
        if topic == "twitch_games":
            published.add(event["game_id"])
        elif topic == "game_streams":
            assert event["game_id"] in published


def test_chat_facts(sample):
    _, events = sample
    chat = [e for t, e, _ in events if t == "chat_messages"]
    for message in chat[:5000]:
        for emote in message["emotes"]:
            assert message["text"][emote["begin"] : emote["end"] + 1] == emote["name"]
        for login in message["mentions"]:
            assert f"@{login}" in message["text"].lower()
    share = lambda pred: sum(1 for m in chat if pred(m)) / len(chat)  # noqa: E731
    assert 0.1 < share(lambda m: m["emotes"]) < 0.5
    assert 0.05 < share(lambda m: m["text"].endswith("?")) < 0.3
    assert 0.03 < share(lambda m: m["mentions"]) < 0.3
    assert 0.01 < share(lambda m: m["reply_parent_message_id"]) < 0.1
    assert share(lambda m: any(b["set_id"] == "subscriber" for b in m["badges"])) > 0.1
    assert len({m["message_id"] for m in chat}) == len(chat)
    per_channel = Counter(m["channel"] for m in chat)
    assert per_channel.most_common(1)[0][1] > 20 * statistics.median(per_channel.values())  # chat follows viewers


def test_a_profile_not_published_for_half_the_ttl_is_republished_before_the_next_snapshot():
    """Broadcasters coming back after more than the state TTL still find their profile in the enrichment's state."""
    ttl_ms = 2 * 3_600_000
    world = World(5, START, channels=300, games=60, state_ttl_s=ttl_ms / 1000)
    horizon = ttl_ms // 2
    last_published: dict[str, int] = {}
    last_live: dict[str, int] = {}
    returns_after_ttl = republished_unchanged = 0
    previous: dict[str, dict] = {}
    for topic, event, ts in itertools.takewhile(lambda e: e[2] < START + 12 * 3_600_000, world.events()):
        if topic == "twitch_users":
            user = event["user_id"]
            republished_unchanged += {k: v for k, v in event.items() if k != "data_retrieved_at"} == previous.get(user)
            previous[user] = {k: v for k, v in event.items() if k != "data_retrieved_at"}
            last_published[user] = parse_iso_ms(event["data_retrieved_at"])
            assert last_published[user] == ts
        elif topic == "game_streams" and event["user_id"] in last_published:
            user = event["user_id"]
            # the version the join looks up (latest at or before the snapshot) is never older than the horizon
            assert 0 <= ts - last_published[user] < horizon, (user, ts)
            returns_after_ttl += ts - last_live.get(user, ts) > ttl_ms
            last_live[user] = ts
    assert returns_after_ttl > 10 and republished_unchanged > returns_after_ttl


@pytest.mark.parametrize(("channels", "interval_s"), [(3000, 60.0), (33_000, 1.0)])
def test_each_page_of_a_poll_carries_its_own_fetch_time(channels, interval_s):
    """As the Helix poller stamps them: 100 snapshots a page, a page every 75 ms or closer, all within the poll."""
    world = World(5, START, channels=channels, poll_interval_s=interval_s)
    live = len(world.live)
    poll = [(e, t) for topic, e, t in itertools.islice(world.events(), 3 * live + 10_000) if topic == "game_streams"][:live]
    times = sorted({t for _, t in poll})
    assert len(times) == -(-live // 100)
    assert all(iso_ms(t) == e["data_retrieved_at"] for e, t in poll)
    assert Counter(t for _, t in poll)[START] == 100
    steps = {b - a for a, b in itertools.pairwise(times)}
    assert steps == {min(75, int(interval_s * 1000) // len(times))}
    assert times[-1] < START + interval_s * 1000
    viewers = [e["viewer_count"] for e, _ in poll]
    assert viewers == sorted(viewers, reverse=True)  # pages in Helix's order, by viewers
