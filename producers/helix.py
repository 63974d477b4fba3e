"""The Helix poller: top games, live streams and new broadcaster profiles into Kafka, every poll.

All calls go through twitchAPI. :class:`PacedTwitch` adds what a long-running poller needs on top
of it: it paces requests by the ``Ratelimit-*`` headers (800 points a minute per app token), and it
retries 429, 5xx and network errors with backoff instead of failing the poll (twitchAPI alone waits
out a 429 and then hands the error response back as an empty page, which would silently truncate a
paginated listing). A 401 is left to twitchAPI, which fetches a fresh app token and retries once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Iterable
from urllib.parse import urlsplit

import aiohttp
from twitchAPI.helper import TWITCH_API_BASE_URL, TWITCH_AUTH_BASE_URL
from twitchAPI.twitch import Twitch
from twitchAPI.type import TwitchAuthorizationException, TwitchBackendException

from connectors.topics import GAME_STREAMS, TWITCH_GAMES, TWITCH_USERS
from producers.contracts import datetime_ms, iso_ms, stream_event_id
from twitch_pipeline.errors import PlatformError
from twitch_pipeline.settings import Settings

_LOG = logging.getLogger("producers.helix")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
PAGE = 100  # Helix's largest page


class RateLimit:
    """The app token's point bucket as the last response described it."""

    def __init__(self, reserve: int = 2):
        self.reserve = reserve  # points kept back so a burst of concurrent calls cannot overdraw
        self.limit: int | None = None
        self.remaining: int | None = None
        self.reset_at: float = 0.0  # epoch seconds at which the bucket is full again
        self.waited_s = 0.0

    def observe(self, headers) -> None:
        try:
            self.limit = int(headers["Ratelimit-Limit"])
            self.remaining = int(headers["Ratelimit-Remaining"])
            self.reset_at = float(headers["Ratelimit-Reset"])
        except (KeyError, ValueError):
            pass

    def delay(self, now: float) -> float:
        if self.remaining is not None and self.remaining <= self.reserve and self.reset_at > now:
            return self.reset_at - now + 0.05
        return 0.0

    def spend(self) -> None:
        if self.remaining is not None:
            self.remaining -= 1


class PacedTwitch(Twitch):
    """twitchAPI's client, paced by the rate-limit headers and retrying transient failures."""

    def __init__(self, *args, max_attempts: int = 6, backoff_base_s: float = 1.0, backoff_cap_s: float = 60.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.rate = RateLimit()
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.retries: dict[str, int] = {}  # reason -> count, for reports and tests

    # Overrides twitchAPI's request step (same signature); status handling stays twitchAPI's.
    async def _api_request(self, method, session, url, auth_type, required_scope, data=None, retries=1):
        path = urlsplit(url).path  # never the query or headers: no token or secret in logs
        for attempt in range(self.max_attempts):
            wait = self.rate.delay(time.time())
            if wait > 0:
                self.rate.waited_s += wait
                await asyncio.sleep(wait)
            self.rate.spend()
            try:
                response = await session.request(method, url, headers=self._generate_header(auth_type, required_scope), json=data)
            except (aiohttp.ClientError, asyncio.TimeoutError) as err:
                reason, delay = type(err).__name__, self._backoff(attempt)
            else:
                self.rate.observe(response.headers)
                if response.status not in RETRY_STATUSES:
                    return await self._check_request_return(session, response, method, url, auth_type, required_scope, data, retries)
                reason, delay = str(response.status), self._retry_after(response, attempt)
                response.release()
            self.retries[reason] = self.retries.get(reason, 0) + 1
            _LOG.warning("Helix %s %s: %s, retry %d/%d in %.1fs", method, path, reason, attempt + 1, self.max_attempts - 1, delay)
            await asyncio.sleep(delay)
        raise TwitchBackendException(f"Helix {method} {path} still failing after {self.max_attempts} attempts")

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff_cap_s, self.backoff_base_s * 2**attempt) * random.uniform(0.5, 1.0)

    def _retry_after(self, response, attempt: int) -> float:
        if response.status == 429 and self.rate.reset_at:
            return min(self.backoff_cap_s, max(self.rate.reset_at - time.time(), 0.0) + 0.05)
        return self._backoff(attempt)


def _base(url: str, default: str) -> str:
    return (url or default).rstrip("/") + "/"


async def connect_helix(settings: Settings, **client_options: Any) -> PacedTwitch:
    """An app-authenticated client (client-credentials flow) for the configured Helix endpoint."""
    if not settings.twitch_credentials_set:
        raise PlatformError("the Twitch source needs TWITCH_CLIENT_ID and TWITCH_CLIENT_SECRET (or APP_ID / APP_SECRET) in the environment or .env")
    twitch = PacedTwitch(settings.twitch_client_id, settings.twitch_client_secret, authenticate_app=False,
                         base_url=_base(settings.twitch_api_url, TWITCH_API_BASE_URL),
                         auth_base_url=_base(settings.twitch_auth_url, TWITCH_AUTH_BASE_URL), **client_options)
    try:
        await twitch.authenticate_app([])
    except TwitchAuthorizationException:
        raise PlatformError("Twitch refused the app credentials (check TWITCH_CLIENT_ID / TWITCH_CLIENT_SECRET)") from None
    except aiohttp.ClientError as err:
        raise PlatformError(f"cannot reach the Twitch auth endpoint {twitch.auth_base_url}: {type(err).__name__}") from None
    return twitch


@dataclass
class PollResult:
    games: int = 0
    users: int = 0
    streams: int = 0
    duplicates_across_pages: int = 0
    complete: bool = True  # False once a bounded run has sent all its events


class HelixPoller:
    """One poll = top games, live streams (tracked games or top N), profiles not seen recently.

    Profiles and games are published before the stream snapshots of the same poll, and only when
    first seen or changed (the topics are compacted changelogs; ``data_retrieved_at`` is the version).
    """

    def __init__(self, twitch: Twitch, publisher, settings: Settings, clock=time.time):
        self.twitch = twitch
        self.publisher = publisher
        self.settings = settings
        self.clock = clock
        self._games: dict[str, tuple] = {}  # game_id -> last published fingerprint
        self._users: dict[str, tuple[float, tuple]] = {}  # user_id -> (fetched at, last published fingerprint)
        self._tracked: list[str] | None = None
        self.polling_since_ms: int | None = None  # event time of the poll in progress (heartbeats stay behind it)

    async def poll_once(self) -> PollResult:
        now_ms = int(self.clock() * 1000)
        self.polling_since_ms = now_ms
        try:
            return await self._poll(now_ms)
        finally:
            self.polling_since_ms = None

    async def _poll(self, now_ms: int) -> PollResult:
        retrieved = iso_ms(now_ms)
        result = PollResult()
        games = {g.id: g async for g in _take(self.twitch.get_top_games(first=min(PAGE, max(self.settings.twitch_top_games, 1))), self.settings.twitch_top_games)}
        streams: dict[str, Any] = {}
        async for stream in self._live_streams():
            if stream.id in streams:  # Helix pages can repeat a stream whose rank moved between two pages
                result.duplicates_across_pages += 1
                continue
            streams[stream.id] = stream
        unknown_games = sorted({s.game_id for s in streams.values() if s.game_id and s.game_id not in games and s.game_id not in self._games})
        for chunk in _chunks(unknown_games, PAGE):
            games.update({g.id: g async for g in self.twitch.get_games(game_ids=chunk)})
        stale = self.clock() - self.settings.twitch_profile_refresh_s
        wanted = sorted({s.user_id for s in streams.values() if self._users.get(s.user_id, (float("-inf"),))[0] < stale})
        users = []
        for chunk in _chunks(wanted, PAGE):
            users += [u async for u in self.twitch.get_users(user_ids=chunk)]

        for game in games.values():
            event = {"game_id": game.id, "name": game.name, "box_art_url": game.box_art_url or "", "igdb_id": game.igdb_id or "",
                     "data_retrieved_at": retrieved}
            fingerprint = (event["name"], event["box_art_url"], event["igdb_id"])
            if self._games.get(game.id) != fingerprint:
                if not self.publisher.publish(TWITCH_GAMES.name, event, now_ms):
                    return PollResult(complete=False)
                self._games[game.id] = fingerprint
                result.games += 1
        for user in users:
            event = {"user_id": user.id, "login": user.login, "display_name": user.display_name,
                     "broadcaster_type": user.broadcaster_type or "", "description": user.description or "",
                     "created_at": iso_ms(datetime_ms(user.created_at)), "data_retrieved_at": retrieved}
            fingerprint = tuple(v for k, v in event.items() if k != "data_retrieved_at")
            previous = self._users.get(user.id)
            self._users[user.id] = (self.clock(), fingerprint)
            if previous is None or previous[1] != fingerprint:
                if not self.publisher.publish(TWITCH_USERS.name, event, now_ms):
                    return PollResult(complete=False)
                result.users += 1
        for stream in streams.values():
            if not self.publisher.publish(GAME_STREAMS.name, stream_event(stream, retrieved), now_ms):
                return PollResult(complete=False)
            result.streams += 1
        return result

    async def _live_streams(self) -> AsyncIterator[Any]:
        cap = self.settings.twitch_top_streams
        tracked = await self._tracked_game_ids()
        if not tracked:
            async for stream in _take(self.twitch.get_streams(first=PAGE, stream_type="live"), cap):
                yield stream
            return
        seen = 0
        for chunk in _chunks(tracked, PAGE):
            async for stream in _take(self.twitch.get_streams(first=PAGE, game_id=chunk, stream_type="live"), cap - seen):
                seen += 1
                yield stream

    async def _tracked_game_ids(self) -> list[str]:
        if self._tracked is None:
            entries = [e.strip() for e in self.settings.twitch_tracked_games.split(",") if e.strip()]
            ids = [e for e in entries if e.isdigit()]
            names = [e for e in entries if not e.isdigit()]
            for chunk in _chunks(names, PAGE):
                found = [g async for g in self.twitch.get_games(names=chunk)]
                missing = set(chunk) - {g.name for g in found}
                if missing:
                    _LOG.warning("tracked games not found on Twitch: %s", ", ".join(sorted(missing)))
                ids += [g.id for g in found]
            self._tracked = ids
        return self._tracked


def stream_event(stream: Any, retrieved: str) -> dict[str, Any]:
    """A Helix stream as a ``game_streams`` event (see producers/schemas/game_streams.schema.json)."""
    return {"event_id": stream_event_id(stream.id, retrieved), "stream_id": stream.id, "user_id": stream.user_id,
            "user_login": stream.user_login, "user_name": stream.user_name, "game_id": stream.game_id or "",
            "game_name": stream.game_name or "", "stream_type": stream.type or "", "title": stream.title or "",
            "viewer_count": int(stream.viewer_count or 0), "started_at": iso_ms(datetime_ms(stream.started_at)),
            "language": stream.language or "", "is_mature": bool(stream.is_mature), "tags": list(stream.tags or []),
            "data_retrieved_at": retrieved}


async def _take(gen: AsyncIterator[Any], n: int) -> AsyncIterator[Any]:
    if n <= 0:
        return
    count = 0
    try:
        async for item in gen:
            yield item
            count += 1
            if count >= n:
                break
    finally:
        await gen.aclose()  # closes twitchAPI's HTTP session of the listing we stopped reading


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    return (items[i : i + size] for i in range(0, len(items), size))
