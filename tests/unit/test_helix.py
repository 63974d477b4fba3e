"""The Helix poller's logic without a network: retries, stop, errors by kind, counting, page times, republishing.

The same paths run against a real local Helix server and Kafka in tests/integration/test_helix_producer.py,
and against the real enrichment job in tests/integration/test_profile_republish.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from types import SimpleNamespace

import pytest

from producers.contracts import iso_ms, parse_iso_ms, stream_event_id
from producers.helix import HelixPoller, PacedTwitch, RateLimit, connect_helix
from twitch_pipeline.errors import ConfigurationError, StateLog, TransientError
from twitch_pipeline.settings import load_settings

T0 = parse_iso_ms("2026-11-21T11:05:00.000Z")


@pytest.fixture
def settings():
    return dataclasses.replace(load_settings(environ={}, dotenv=None), twitch_client_id="id", twitch_client_secret="secret",
                               twitch_poll_interval_s=0.0, state_ttl_s=600.0, twitch_profile_refresh_s=3600.0)


# -- the client: retries, stop, errors ------------------------------------------------------------------------
class FakeResponse:
    def __init__(self, status: int, body: dict | None = None):
        self.status, self.headers, self._body = status, {}, body or {}

    async def json(self):
        return self._body

    def release(self):
        pass


class FakeSession:
    """Answers every request with the next status of ``statuses`` (the last one repeats)."""

    def __init__(self, *statuses: int):
        self.statuses = list(statuses)
        self.requests = 0

    async def request(self, method, url, headers=None, json=None):
        self.requests += 1
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return FakeResponse(status, {"message": "no such thing", "data": []})


def client(**options) -> PacedTwitch:
    twitch = PacedTwitch("id", "secret", authenticate_app=False, base_url="http://127.0.0.1:9/wrong/",
                         auth_base_url="http://127.0.0.1:9/auth/", **options)
    twitch._has_app_auth, twitch._app_auth_token = True, "token"
    return twitch


def request(twitch: PacedTwitch, session: FakeSession):
    from twitchAPI.type import AuthType

    return twitch._api_request("GET", session, "http://127.0.0.1:9/wrong/streams?first=100", AuthType.APP, [])


def test_gives_up_after_the_last_attempt_without_waiting_and_logs_the_outage_once(caplog):
    twitch = client(max_attempts=4, backoff_base_s=0.001)
    waits: list[float] = []

    async def pause(seconds):
        waits.append(seconds)

    twitch.pause = pause
    session = FakeSession(503)
    with caplog.at_level(logging.DEBUG, logger="producers.helix"), pytest.raises(TransientError, match="after 4 attempts"):
        asyncio.run(request(twitch, session))
    assert session.requests == 4 and len(waits) == 3, "three waits between four attempts, none after the last"
    assert [r.getMessage() for r in caplog.records if "retry" in r.getMessage()][-1].endswith(f"retry 3/3 in {waits[-1]:.1f}s")
    assert [r.levelno for r in caplog.records].count(logging.WARNING) == 1 and twitch.retries == {"503": 4}
    assert twitch.health.state == "waiting for the Helix API"
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="producers.helix"):
        asyncio.run(request(twitch, FakeSession(200)))
    assert twitch.health.state == "ok" and ["is back after" in r.getMessage() for r in caplog.records] == [True]


def test_a_stop_request_ends_a_retry_wait_at_once():
    twitch = client(backoff_base_s=30.0)

    async def scenario():
        twitch.stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.2, twitch.stop.set)
        began = time.monotonic()
        with pytest.raises(Exception) as err:
            await request(twitch, FakeSession(503))
        return type(err.value).__name__, time.monotonic() - began

    kind, elapsed = asyncio.run(scenario())
    assert kind == "Stopped" and elapsed < 2.0


def test_an_empty_bucket_is_waited_out_before_the_next_request_where_a_stop_request_can_end_it():
    twitch = client()
    session = FakeSession(200)
    reset = time.time() + 30
    original = session.request

    async def emptying(*args, **kwargs):
        response = await original(*args, **kwargs)
        response.headers = {"Ratelimit-Limit": "800", "Ratelimit-Remaining": "0", "Ratelimit-Reset": str(reset)}
        return response

    session.request = emptying

    async def scenario():
        twitch.stop = asyncio.Event()
        began = time.monotonic()
        await request(twitch, session)  # twitchAPI alone would sleep here until the bucket is full again
        answered = time.monotonic() - began
        asyncio.get_running_loop().call_later(0.2, twitch.stop.set)
        with pytest.raises(Exception) as err:
            await request(twitch, session)
        return answered, type(err.value).__name__, time.monotonic() - began

    answered, kind, stopped = asyncio.run(scenario())
    assert answered < 1.0 and kind == "Stopped" and stopped < 2.0
    assert session.requests == 1 and twitch.rate.waits == 1 and twitch.rate.waited_s > 29


@pytest.mark.parametrize("statuses,fix", [((404,), "TWITCH_PIPELINE_TWITCH_API_URL"), ((400,), "TWITCH_PIPELINE_TWITCH_API_URL"),
                                          ((401, 401), "TWITCH_CLIENT_ID / TWITCH_CLIENT_SECRET")])
def test_what_no_retry_can_fix_is_a_configuration_error_naming_the_setting(statuses, fix):
    twitch = client()

    async def fresh_token():  # twitchAPI fetches a new app token after a 401, then retries once
        pass

    twitch.refresh_used_token = fresh_token
    session = FakeSession(*statuses)
    with pytest.raises(ConfigurationError, match=fix) as err:
        asyncio.run(request(twitch, session))
    assert "\n" not in str(err.value) and session.requests == len(statuses)


@pytest.mark.parametrize("name,url", [("twitch_api_url", "127.0.0.1:8080/mock/"), ("twitch_api_url", "localhost:8080/mock/"),
                                      ("twitch_auth_url", "ftp://example.invalid/auth/")])
def test_a_url_without_scheme_fails_at_start(settings, name, url):
    with pytest.raises(ConfigurationError, match=f"TWITCH_PIPELINE_{name.upper()}=.*not an http"):
        asyncio.run(connect_helix(dataclasses.replace(settings, **{name: url})))


def test_rate_limit_waits_only_when_the_bucket_is_nearly_empty():
    rate = RateLimit(reserve=2)
    assert rate.delay(1000.0) == 0.0
    rate.observe({"Ratelimit-Limit": "800", "Ratelimit-Remaining": "10", "Ratelimit-Reset": "1030"})
    assert rate.delay(1000.0) == 0.0
    rate.observe({"Ratelimit-Limit": "800", "Ratelimit-Remaining": "2", "Ratelimit-Reset": "1030"})
    assert 30.0 <= rate.delay(1000.0) <= 30.1
    assert rate.delay(1031.0) == 0.0
    rate.observe({"Content-Type": "application/json"})  # responses without the headers change nothing
    assert rate.remaining == 2


# -- the poller: page times, republishing, counting --------------------------------------------------------------
class FakeHelix:
    """A Helix in memory: ``live`` user ids are streaming; each page of streams is "fetched" ``page_s`` apart."""

    def __init__(self, clock, users=("1", "2", "3"), page_size: int = 2, page_s: float = 1.5):
        self.clock, self.page_size, self.page_s = clock, page_size, page_s
        self.live = list(users)
        self.descriptions = {u: f"bio {u}" for u in users}
        self.rate, self.retries, self.stop, self.last_response_ms = RateLimit(), {}, None, None
        self.health = StateLog(lambda _: None)
        self.fail: Exception | None = None
        self.user_requests: list[list[str]] = []

    async def _items(self, items):
        for item in items:
            yield item

    def get_top_games(self, first):
        if self.fail is not None:
            raise self.fail
        return self._items([SimpleNamespace(id="g1", name="Game", box_art_url="", igdb_id="")])

    async def get_streams(self, first, stream_type, game_id=None):
        for start in range(0, len(self.live), self.page_size):
            self.last_response_ms = int((self.clock() + self.page_s * (1 + start // self.page_size)) * 1000)
            for user in self.live[start:start + self.page_size]:
                yield SimpleNamespace(id=f"s{user}", user_id=user, user_login=f"u{user}", user_name=f"U{user}", game_id="g1",
                                      game_name="Game", type="live", title="t", viewer_count=10, started_at=_dt(T0 - 3_600_000),
                                      language="en", is_mature=False, tags=[])

    def get_games(self, game_ids=None, names=None):
        return self._items([])

    def get_users(self, user_ids):
        self.user_requests.append(list(user_ids))
        return self._items([SimpleNamespace(id=u, login=f"u{u}", display_name=f"U{u}", broadcaster_type="", description=self.descriptions[u],
                                            created_at=_dt(T0 - 86_400_000)) for u in user_ids])


class Recorder:
    """Stands in for the Publisher: records (topic, event, event time); ``budget`` bounds the run like --events."""

    def __init__(self, budget: int | None = None):
        self.sent: list[tuple[str, dict, int]] = []
        self.budget = budget

    def publish(self, topic, event, event_time_ms) -> bool:
        if self.budget is not None and len(self.sent) >= self.budget:
            return False
        self.sent.append((topic, event, event_time_ms))
        return True


def _dt(ms: int):
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


class Clock:
    def __init__(self, ms: int):
        self.now_s = ms / 1000

    def __call__(self) -> float:
        return self.now_s


def test_snapshots_carry_their_page_time_and_dimensions_the_poll_start(settings):
    clock = Clock(T0)
    helix, out = FakeHelix(clock), Recorder()
    result = asyncio.run(HelixPoller(helix, out, settings, clock=clock).poll_once())
    assert result.complete and (result.games, result.users, result.streams) == (1, 3, 3)
    assert [t for t, _, _ in out.sent] == ["twitch_games"] + ["twitch_users"] * 3 + ["game_streams"] * 3
    snapshots = {e["stream_id"]: e for t, e, _ in out.sent if t == "game_streams"}
    # two streams on the first page (fetched 1.5 s after the poll started), one on the second (3 s)
    assert {s: e["data_retrieved_at"] for s, e in snapshots.items()} == {"s1": iso_ms(T0 + 1500), "s2": iso_ms(T0 + 1500), "s3": iso_ms(T0 + 3000)}
    assert all(e["event_id"] == stream_event_id(s, e["data_retrieved_at"]) for s, e in snapshots.items())
    assert all(ms == parse_iso_ms(e["data_retrieved_at"]) for t, e, ms in out.sent)
    # games and profiles at the poll's start: no later than any snapshot that joins them
    assert {e["data_retrieved_at"] for t, e, _ in out.sent if t != "game_streams"} == {iso_ms(T0)}


def test_profiles_are_republished_when_a_broadcaster_returns_after_half_the_ttl(settings):
    clock = Clock(T0)
    helix, out = FakeHelix(clock), Recorder()
    poller = HelixPoller(helix, out, settings, clock=clock)  # state_ttl_s=600: republish after 300 s

    def poll_at(seconds: float, live: list[str]) -> list[tuple[str, dict, int]]:
        clock.now_s, helix.live = T0 / 1000 + seconds, live
        before = len(out.sent)
        asyncio.run(poller.poll_once())
        return out.sent[before:]

    poll_at(0, ["1", "2", "3"])
    assert [t for t, _, _ in poll_at(60, ["1", "2"])] == ["game_streams"] * 2, "profiles unchanged and fresh: not fetched, not sent"
    helix.descriptions["2"] = "new bio"
    changed = poll_at(120, ["1", "2"])  # not fetched again before twitch_profile_refresh_s: the change waits
    assert [t for t, _, _ in changed] == ["game_streams"] * 2
    back = poll_at(700, ["2", "3"])  # 3 was away 700 s (> the 600 s TTL), 2 was last published 700 s ago
    profiles = [e for t, e, _ in back if t == "twitch_users"]
    assert sorted(p["user_id"] for p in profiles) == ["2", "3"] and helix.user_requests[-1] == ["2", "3"]
    assert {p["user_id"]: p["description"] for p in profiles} == {"2": "new bio", "3": "bio 3"}
    assert [t for t, _, _ in back].index("game_streams") > max(i for i, (t, _, _) in enumerate(back) if t == "twitch_users")
    snapshot_times = {e["user_id"]: ms for t, e, ms in back if t == "game_streams"}
    assert all(parse_iso_ms(p["data_retrieved_at"]) <= snapshot_times[p["user_id"]] for p in profiles)
    assert poller.stats.republished == 1, "3 was unchanged (republished); 2 had changed"
    assert [t for t, _, _ in poll_at(760, ["2", "3"])] == ["game_streams"] * 2


def test_a_bounded_run_ending_mid_poll_is_in_the_summary(settings):
    clock = Clock(T0)
    helix, out = FakeHelix(clock), Recorder(budget=1 + 3 + 2)  # one game, three profiles, two of three snapshots
    poller = HelixPoller(helix, out, settings, clock=clock)
    done = asyncio.Event()
    asyncio.run(poller.run(done))
    assert done.is_set() and (poller.stats.polls, poller.stats.complete) == (1, 0) and not poller.failure
    assert "the last cut short by --events after 2 of 3 snapshots (3 profiles, 1 games)" in poller.summary()


def test_skipped_polls_are_counted_and_a_run_where_all_failed_says_so(settings):
    clock = Clock(T0)
    helix = FakeHelix(clock)
    helix.fail = TransientError("Helix GET /helix/games/top still failing after 6 attempts (503)")
    helix.retries = {"503": 18, "ClientConnectorError": 3}
    helix.rate.waits, helix.rate.waited_s = 2, 1.25
    poller = HelixPoller(helix, Recorder(), settings, clock=clock)

    async def three_polls():
        done = asyncio.Event()
        original = poller.poll_once

        async def counted():
            try:
                return await original()
            finally:
                if poller.stats.polls == 3:
                    done.set()

        poller.poll_once = counted
        await poller.run(done)

    asyncio.run(three_polls())
    assert poller.stats.skipped == 3 and poller.failure == "every Helix poll failed (3 tried); the last: " + str(helix.fail)
    line = poller.summary()
    assert line.startswith("helix: 3 polls, 0 complete, 3 skipped") and "retries: 18 x 503, 3 x ClientConnectorError" in line
    assert "rate-limit waits: 2 (1.2 s)" in line and line.endswith("last error: Helix GET /helix/games/top still failing after 6 attempts (503)")


def test_a_configuration_error_ends_the_poller(settings):
    clock = Clock(T0)
    helix = FakeHelix(clock)
    helix.fail = ConfigurationError("Helix answered 404 Not Found to GET /wrong/games/top: TWITCH_PIPELINE_TWITCH_API_URL=...")
    with pytest.raises(ConfigurationError, match="404"):
        asyncio.run(HelixPoller(helix, Recorder(), settings, clock=clock).run(asyncio.Event()))
