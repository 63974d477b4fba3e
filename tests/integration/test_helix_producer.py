"""The Helix poller end to end: a Helix API on localhost -> twitchAPI -> real Kafka.

Two Helix servers: the official Twitch CLI mock API (`mock-api generate` + `mock-api start`, installed
by `make twitch-cli`; skipped when the binary is absent) and a small local one that pages like Helix
(including a stream repeated across pages) and enforces a point bucket with `Ratelimit-*` headers.
A fault-injecting proxy in front of either answers chosen requests with 429, 503 or 401 (and then
revokes the token it refused), which neither server can do on demand.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import math
import os
import subprocess
import threading
import time
import uuid
from functools import partial
from pathlib import Path

import pytest
from aiohttp import ClientSession, web

from producers.contracts import HELIX_PAGE, violations
from producers.heartbeat import HEARTBEAT_KEY
from producers.helix import HelixPoller, Stopped, connect_helix
from producers.run import RunOptions, make_publisher, run
from tests.cli import run_cli
from tests.integration.test_produce_cli import ServerThread, end_offsets, read_since
from twitch_pipeline.errors import wait_until
from twitch_pipeline.platform.process import free_port

pytestmark = pytest.mark.integration

TWITCH_CLI = Path(os.environ.get("TWITCH_CLI", Path(__file__).resolve().parents[2] / ".cache" / "go-bin" / "twitch-cli"))
STREAMS, GAMES = 250, 30


class LocalHelix:
    """Just enough of Helix: client-credentials tokens, top games, games, streams, users; a point bucket."""

    def __init__(self, bucket: int = 6, window_s: float = 1.0):
        self.client_id, self.client_secret = "local-client", "local-secret"
        self.tokens: set[str] = set()
        self.bucket, self.window_s = bucket, window_s
        self.remaining, self.reset_at = bucket, 0.0
        self.organic_429 = 0
        self.games = [{"id": str(1000 + i), "name": f"Game {i}", "box_art_url": f"https://example.invalid/{i}-{{width}}x{{height}}.jpg",
                       "igdb_id": str(i) if i % 3 else ""} for i in range(GAMES)]
        self.users = [{"id": str(5000 + i), "login": f"streamer{i}", "display_name": f"Streamer{i}", "type": "",
                       "broadcaster_type": ("partner", "affiliate", "")[i % 3], "description": f"bio {i}",
                       "profile_image_url": "", "offline_image_url": "", "view_count": 0,
                       "created_at": "2019-05-04T10:00:00Z"} for i in range(STREAMS)]
        self.streams = [{"id": str(90000 + i), "user_id": u["id"], "user_login": u["login"], "user_name": u["display_name"],
                         "game_id": self.games[i % GAMES]["id"], "game_name": self.games[i % GAMES]["name"], "type": "live",
                         "title": f"stream {i}", "viewer_count": 100000 // (i + 1), "started_at": "2026-11-21T09:00:00Z",
                         "language": "en", "thumbnail_url": "", "tag_ids": [], "tags": ["English"], "is_mature": i % 7 == 0}
                        for i, u in enumerate(self.users)]

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth_and_bucket])
        app.router.add_post("/auth/token", self._token)
        app.router.add_get("/mock/games/top", partial(self._page, items=self.games[:20]))
        app.router.add_get("/mock/games", partial(self._by_id, items=self.games))
        app.router.add_get("/mock/users", partial(self._by_id, items=self.users))
        app.router.add_get("/mock/streams", partial(self._page, items=self.streams, overlap=True))
        return app

    async def _token(self, request: web.Request) -> web.Response:
        q = request.query
        if (q.get("client_id"), q.get("client_secret"), q.get("grant_type")) != (self.client_id, self.client_secret, "client_credentials"):
            return web.json_response({"status": 403, "message": "invalid client secret"}, status=403)
        token = uuid.uuid4().hex
        self.tokens.add(token)
        return web.json_response({"access_token": token, "refresh_token": "", "expires_in": 86399, "scope": [], "token_type": "bearer"})

    @web.middleware
    async def _auth_and_bucket(self, request: web.Request, handler):
        if not request.path.startswith("/mock/"):
            return await handler(request)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.tokens or request.headers.get("Client-Id") != self.client_id:
            return web.json_response({"error": "Unauthorized", "status": 401, "message": "Invalid OAuth token"}, status=401)
        now = time.time()
        if now >= self.reset_at:
            self.remaining, self.reset_at = self.bucket, math.ceil(now + self.window_s)
        headers = {"Ratelimit-Limit": str(self.bucket), "Ratelimit-Reset": str(int(self.reset_at))}
        if self.remaining == 0:
            self.organic_429 += 1
            return web.json_response({"status": 429, "message": "Too Many Requests"}, status=429, headers={**headers, "Ratelimit-Remaining": "0"})
        self.remaining -= 1
        response = await handler(request)
        response.headers.update({**headers, "Ratelimit-Remaining": str(self.remaining)})
        return response

    @staticmethod
    async def _page(request: web.Request, items: list[dict], overlap: bool = False) -> web.Response:
        first = int(request.query.get("first", 20))
        start = json.loads(base64.b64decode(request.query["after"])) if request.query.get("after") else 0
        page = items[start : start + first]
        if overlap and start:  # ranks moved between two requests: the previous page's last stream shows up again
            page = [items[start - 1]] + page
        body = {"data": page, "pagination": {}}
        if start + first < len(items):
            body["pagination"]["cursor"] = base64.b64encode(json.dumps(start + first).encode()).decode()
        return web.json_response(body)

    @staticmethod
    async def _by_id(request: web.Request, items: list[dict]) -> web.Response:
        ids, names = request.query.getall("id", []), request.query.getall("name", [])
        return web.json_response({"data": [i for i in items if i["id"] in ids or i.get("name") in names]})


class FaultProxy:
    """Forwards to a Helix server; answers the n-th request to a path with an injected status instead."""

    def __init__(self, upstream: str, faults: dict[tuple[str, int], int]):
        self.upstream = upstream.rstrip("/")
        self.faults = dict(faults)
        self.calls: dict[str, int] = {}
        self.injected: list[tuple[str, int]] = []
        self.revoked: set[str] = set()
        self.token_requests = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        return app

    async def _forward(self, request: web.Request) -> web.Response:
        path = request.path
        if path.startswith("/auth/"):
            self.token_requests += 1
        else:
            token = request.headers.get("Authorization", "")
            if token in self.revoked:
                return web.json_response({"status": 401, "message": "Invalid OAuth token"}, status=401)
            self.calls[path] = self.calls.get(path, 0) + 1
            status = self.faults.pop((path, self.calls[path]), None)
            if status is not None:
                self.injected.append((path, status))
                if status == 401:
                    self.revoked.add(token)
                headers = {"Ratelimit-Limit": "800", "Ratelimit-Remaining": "0", "Ratelimit-Reset": str(int(time.time()) + 1)} if status == 429 else {}
                return web.json_response({"status": status, "message": "injected"}, status=status, headers=headers)
        async with ClientSession() as session:
            async with session.request(request.method, self.upstream + request.path_qs, headers={
                k: v for k, v in request.headers.items() if k.lower() in ("authorization", "client-id")}) as up:
                body = await up.read()
                headers = {k: v for k, v in up.headers.items() if k.lower().startswith("ratelimit") or k.lower() == "content-type"}
                return web.Response(body=body, status=up.status, headers=headers)


FAULTS = {("/mock/streams", 2): 429, ("/mock/users", 1): 503, ("/mock/games/top", 2): 401, ("/mock/streams", 4): 500}


def helix_settings(kafka, proxy: ServerThread, client_id: str, client_secret: str, **overrides):
    return dataclasses.replace(kafka, twitch_client_id=client_id, twitch_client_secret=client_secret,
                               twitch_api_url=proxy.url("/mock/"), twitch_auth_url=proxy.url("/auth/"),
                               **{"twitch_poll_interval_s": 0.5, "heartbeat_interval_s": 0.5, "twitch_top_games": 20, **overrides})


def test_poller_against_local_helix(kafka):
    helix = LocalHelix()
    upstream = ServerThread(helix.app())
    proxy_app = FaultProxy(upstream.url(), FAULTS)
    proxy = ServerThread(proxy_app.app())
    try:
        settings = helix_settings(kafka, proxy, helix.client_id, helix.client_secret)
        before = end_offsets(kafka)
        # first poll: 30 games (20 top + 10 referenced), 250 profiles, 250 snapshots; second poll: 250 snapshots
        result = run(settings, RunOptions(source="twitch", events=GAMES + 2 * STREAMS + STREAMS), out=None)
        records = [m for m in read_since(kafka, before) if m.key() != HEARTBEAT_KEY]
    finally:
        proxy.stop()
        upstream.stop()

    assert result.ok and result.sent == GAMES + 3 * STREAMS
    assert {k: v["unique"] for k, v in result.summary.items() if v["unique"]} == {"twitch_games": GAMES, "twitch_users": STREAMS, "game_streams": 2 * STREAMS}
    by_topic: dict[str, list] = {}
    for msg in records:
        event = json.loads(msg.value())
        assert not violations(msg.topic(), event)
        by_topic.setdefault(msg.topic(), []).append((msg, event))
    # each snapshot carries the time its page was fetched; the second poll's pages all come after the first's
    snapshots = sorted((e for _, e in by_topic["game_streams"]), key=lambda e: e["data_retrieved_at"])
    polls = [snapshots[:STREAMS], snapshots[STREAMS:]]
    for poll in polls:  # every stream exactly once per poll, although Helix repeated some across pages
        assert sorted(e["stream_id"] for e in poll) == sorted(s["id"] for s in helix.streams)
        assert len({e["data_retrieved_at"] for e in poll}) == math.ceil(STREAMS / HELIX_PAGE), "one time per page"
    assert len({e["event_id"] for e in snapshots}) == 2 * STREAMS
    # profiles and games carry their poll's start: the temporal join downstream finds them for every snapshot
    dimensions = sorted(e["data_retrieved_at"] for topic in ("twitch_users", "twitch_games") for _, e in by_topic[topic])
    assert dimensions[-1] < polls[0][0]["data_retrieved_at"]
    first = {e["stream_id"]: e for e in polls[0]}["90000"]
    assert (first["viewer_count"], first["started_at"], first["is_mature"], first["tags"]) == (100000, "2026-11-21T09:00:00.000Z", True, ["English"])
    # profiles and games were in Kafka before the first snapshot that needs them
    first_snapshot = min(m.timestamp()[1] for m, _ in by_topic["game_streams"])
    assert max(m.timestamp()[1] for m, _ in by_topic["twitch_users"] + by_topic["twitch_games"]) <= first_snapshot
    # the injected faults were met and survived: 429 waited out, 5xx retried, 401 -> fresh token
    assert sorted(proxy_app.injected) == sorted((p, s) for (p, _), s in FAULTS.items())
    assert proxy_app.token_requests == 2
    # pacing by the Ratelimit headers: many more calls than one bucket, yet Helix never had to refuse one
    assert sum(proxy_app.calls.values()) > 2 * helix.bucket and helix.organic_429 == 0


def serve(faults: dict[tuple[str, int], int] | None = None) -> tuple[LocalHelix, ServerThread, FaultProxy, ServerThread]:
    helix = LocalHelix()
    upstream = ServerThread(helix.app())
    proxy_app = FaultProxy(upstream.url(), faults or {})
    return helix, upstream, proxy_app, ServerThread(proxy_app.app())


async def poll_until(settings, until, **client_options) -> HelixPoller:
    """The poller as `produce` runs it (real client, real publisher into Kafka) until ``until(poller)`` holds."""
    twitch = await connect_helix(settings, **client_options)
    poller = HelixPoller(twitch, make_publisher(settings, RunOptions(source="twitch")), settings)
    done = asyncio.Event()
    poll_once = poller.poll_once

    async def poll_unless_done():
        # checked before each poll as well: when a poll outlasts the interval, the next one starts without the
        # watcher getting a turn, and CI once counted a fourth poll that way
        if until(poller):
            done.set()
            raise Stopped
        return await poll_once()

    poller.poll_once = poll_unless_done

    async def watch():
        while not done.is_set():
            if until(poller):
                done.set()
            await asyncio.sleep(0.05)

    watcher = asyncio.ensure_future(watch())
    try:
        await poller.run(done)
    finally:
        done.set()
        await watcher
        poller.publisher.flush()
        await twitch.close()
    return poller


@pytest.mark.parametrize("api_path,wanted", [("/wrong/", "404 Not Found"), (None, "not an http(s) URL")])
def test_a_wrong_api_url_ends_the_run_at_once_with_one_line_naming_the_setting(kafka, api_path, wanted):
    helix, upstream, _, proxy = serve()
    try:
        settings = helix_settings(kafka, proxy, helix.client_id, helix.client_secret)
        api_url = proxy.url(api_path) if api_path else proxy.url("/mock/").removeprefix("http://")
        began = time.monotonic()
        done = run_cli(dataclasses.replace(settings, twitch_api_url=api_url), "produce", "--source", "twitch", timeout=60)
    finally:
        proxy.stop()
        upstream.stop()
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2 and "Traceback" not in done.stderr and len(errors) == 1, done.stderr
    assert wanted in errors[0] and "TWITCH_PIPELINE_TWITCH_API_URL" in errors[0]
    assert time.monotonic() - began < 30, "no retries: waiting cannot fix a wrong URL"


def test_a_stop_request_ends_a_retry_wait_at_once(kafka):
    helix, upstream, proxy_app, proxy = serve({("/mock/games/top", n): 503 for n in range(1, 100)})
    try:
        settings = helix_settings(kafka, proxy, helix.client_id, helix.client_secret)
        stop_requested: list[float] = []

        def second_attempt_failed(poller) -> bool:  # the client is now waiting 2-4 s before its third attempt
            if proxy_app.calls.get("/mock/games/top", 0) >= 2 and not stop_requested:
                stop_requested.append(time.monotonic())
            return bool(stop_requested)

        poller = asyncio.run(poll_until(settings, second_attempt_failed))
        stopped_after = time.monotonic() - stop_requested[0]
    finally:
        proxy.stop()
        upstream.stop()
    assert stopped_after < 1.0 and poller.stats.skipped == 0 and proxy_app.calls["/mock/games/top"] == 2


def test_skipped_polls_retries_and_rate_limit_waits_are_counted(kafka):
    # the first poll fails on every attempt; later polls meet a 429 and wait on the rate-limit headers
    helix, upstream, proxy_app, proxy = serve({**{("/mock/games/top", n): 503 for n in (1, 2, 3)}, ("/mock/streams", 2): 429})
    try:
        # poll_until stops the poller before a fourth poll begins
        settings = helix_settings(kafka, proxy, helix.client_id, helix.client_secret, twitch_poll_interval_s=2.0)
        before = end_offsets(kafka)
        poller = asyncio.run(poll_until(settings, lambda p: p.stats.complete >= 2, max_attempts=3, backoff_base_s=0.05))
        snapshots = [m for m in read_since(kafka, before) if m.topic() == "game_streams" and m.key() != HEARTBEAT_KEY]
    finally:
        proxy.stop()
        upstream.stop()
    stats = poller.stats
    assert (stats.polls, stats.skipped, stats.complete) == (3, 1, 2) and not poller.failure
    assert poller.twitch.retries == {"503": 3, "429": 1} and poller.twitch.rate.waits > 0
    assert len(snapshots) == 2 * STREAMS
    line = poller.summary()
    assert line.startswith("helix: 3 polls, 2 complete, 1 skipped") and "retries: 1 x 429, 3 x 503" in line
    assert f"rate-limit waits: {poller.twitch.rate.waits} (" in line and "still failing after 3 attempts (503)" in line


def test_a_run_in_which_every_poll_failed_says_so(kafka):
    helix, upstream, _, proxy = serve({("/mock/games/top", n): 503 for n in range(1, 100)})
    try:
        settings = helix_settings(kafka, proxy, helix.client_id, helix.client_secret)
        poller = asyncio.run(poll_until(settings, lambda p: p.stats.skipped >= 2, max_attempts=2, backoff_base_s=0.05))
    finally:
        proxy.stop()
        upstream.stop()
    assert poller.failure.startswith("every Helix poll failed (2 tried); the last: Helix GET /mock/games/top still failing after 2 attempts (503)")
    assert poller.twitch.health.state == "waiting for the Helix API"


@pytest.mark.skipif(not TWITCH_CLI.is_file(), reason=f"Twitch CLI not installed at {TWITCH_CLI} (`make twitch-cli`)")
def test_poller_against_twitch_cli_mock_api(kafka, tmp_path):
    port = free_port()
    env = {**os.environ, "HOME": str(tmp_path)}  # the mock's database lives under $HOME
    subprocess.run([str(TWITCH_CLI), "mock-api", "generate", "-c", "25"], env=env, check=True, capture_output=True, timeout=120)
    server = subprocess.Popen([str(TWITCH_CLI), "mock-api", "start", "-p", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    proxy = None
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _get_json(f"{base}/units/clients") is not None, 30, "the Twitch CLI mock API")
        client = _units(base, "clients")[0]
        streams = _units(base, "streams")
        proxy_app = FaultProxy(base, {("/mock/streams", 2): 429, ("/mock/users", 1): 503, ("/mock/games/top", 2): 401})
        proxy = ServerThread(proxy_app.app())
        settings = helix_settings(kafka, proxy, client["ID"], client["Secret"])
        before = end_offsets(kafka)
        result = run(settings, RunOptions(source="twitch", events=3 * len(streams) + 10), out=None)
        records = [m for m in read_since(kafka, before) if m.key() != HEARTBEAT_KEY]
    finally:
        if proxy is not None:
            proxy.stop()
        server.terminate()
        server.wait(10)
    assert result.ok
    snapshots = [json.loads(m.value()) for m in records if m.topic() == "game_streams"]
    assert snapshots and all(not violations("game_streams", e) for e in snapshots)
    assert {e["stream_id"] for e in snapshots} == {s["id"] for s in streams}
    assert proxy_app.token_requests >= 2 and len(proxy_app.injected) == 3


def _units(base: str, kind: str) -> list[dict]:
    body = _get_json(f"{base}/units/{kind}")
    return body.get("data") or body.get("Data") or []


def _get_json(url: str):
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return json.loads(response.read())
    except OSError:
        return None


def test_the_run_summary_counts_the_polls_and_a_run_where_every_poll_failed_fails(kafka):
    from producers.run import summary_table

    helix, upstream, proxy_app, proxy = serve({("/mock/games/top", n): 503 for n in range(1, 100)})
    stop = threading.Event()
    try:
        settings = helix_settings(kafka, proxy, helix.client_id, helix.client_secret)
        threading.Thread(target=lambda: (wait_until(lambda: proxy_app.calls.get("/mock/games/top", 0) >= 2, 30, "two failed attempts"), stop.set()),
                         daemon=True).start()
        began = time.monotonic()
        result = run(settings, RunOptions(source="twitch"), out=None, stop=stop)
    finally:
        stop.set()
        proxy.stop()
        upstream.stop()
    assert not result.ok and result.source_failed.startswith("every Helix poll failed (1 tried); the last: the Helix API: GET /mock/games/top: 503")
    assert summary_table(result).endswith(result.source_report) and result.source_report.startswith("helix: 1 polls, 0 complete, 0 skipped")
    assert time.monotonic() - began < 15, "the stop request ended the retry wait"
