"""The Helix poller: top games, live streams and broadcaster profiles into Kafka, every poll.

All calls go through twitchAPI. :class:`PacedTwitch` adds what a long-running poller needs on top
of it: it paces requests by the ``Ratelimit-*`` headers (800 points a minute per app token), and it
retries 429, 5xx and network errors with back-off instead of failing the poll (twitchAPI alone waits
out a 429 and then hands the error response back as an empty page, which would silently truncate a
paginated listing). A 401 is left to twitchAPI, which fetches a fresh app token and retries once.

Errors by kind (twitch_pipeline/errors.py): an outage is retried, logged once when it starts and once
when it ends, and a poll that still fails is skipped and counted; what no retry can fix (a 400 or 404,
which mean a wrong API URL, a 401 after a fresh token, an API URL that is not a URL) ends the poller
with one line naming the setting to fix. Every wait ends at once on a stop request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Iterable
from urllib.parse import urlsplit

import aiohttp
from twitchAPI.helper import TWITCH_API_BASE_URL, TWITCH_AUTH_BASE_URL
from twitchAPI.twitch import Twitch
from twitchAPI.type import TwitchAPIException, TwitchAuthorizationException, TwitchBackendException, TwitchResourceNotFound

from connectors.topics import GAME_STREAMS, TWITCH_GAMES, TWITCH_USERS
from producers.contracts import HELIX_PAGE, datetime_ms, iso_ms, stream_event_id
from producers.profiles import PublishedProfiles
from twitch_pipeline.errors import Backoff, ConfigurationError, StateLog, TransientError
from twitch_pipeline.settings import FIELDS, Settings, env_name

_LOG = logging.getLogger("producers.helix")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
CREDENTIALS = "TWITCH_CLIENT_ID / TWITCH_CLIENT_SECRET"


def _env(name: str) -> str:
    return env_name(next(f for f in FIELDS if f.name == name))


class Stopped(Exception):
    """A stop request ended a wait; the poll in progress is abandoned before it published anything of its own."""


class RateLimit:
    """The app token's point bucket as the last response described it."""

    def __init__(self, reserve: int = 2):
        self.reserve = reserve  # points kept back so a burst of concurrent calls cannot overdraw
        self.limit: int | None = None
        self.remaining: int | None = None
        self.reset_at: float = 0.0  # epoch seconds at which the bucket is full again
        self.waits = 0
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
    """twitchAPI's client, paced by the rate-limit headers and retrying transient failures.

    ``stop`` (an asyncio event, set by the poller) ends any wait at once by raising :class:`Stopped`.
    ``last_response_ms`` is when the latest successful response arrived: the poller stamps each stream
    with the time its page was fetched.
    """

    def __init__(self, *args, max_attempts: int = 6, backoff_base_s: float = 1.0, backoff_cap_s: float = 60.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.rate = RateLimit()
        self.max_attempts = max_attempts
        self.backoff = Backoff(initial_s=backoff_base_s, max_s=backoff_cap_s)
        self.retries: dict[str, int] = {}  # reason -> count, for the run's summary
        self.health = StateLog(_LOG.warning)
        self.stop: asyncio.Event | None = None
        self.last_response_ms: int | None = None

    # Overrides twitchAPI's request step (same signature); status handling stays twitchAPI's.
    async def _api_request(self, method, session, url, auth_type, required_scope, data=None, retries=1):
        path = urlsplit(url).path  # never the query or headers: no token or secret in logs
        self.backoff.reset()
        for attempt in range(1, self.max_attempts + 1):
            wait = self.rate.delay(time.time())
            if wait > 0:
                self.rate.waits += 1
                self.rate.waited_s += wait
                await self.pause(wait)
            self.rate.spend()
            try:
                response = await session.request(method, url, headers=self._generate_header(auth_type, required_scope), json=data)
            except aiohttp.InvalidURL:
                raise ConfigurationError(f"{_env('twitch_api_url')}: {self.base_url!r} is not an http(s) URL such as https://api.twitch.tv/helix/") from None
            except (aiohttp.ClientError, asyncio.TimeoutError) as err:
                reason, delay = type(err).__name__, None
            else:
                self.rate.observe(response.headers)
                if response.status not in RETRY_STATUSES:
                    self.health.ok()
                    self.last_response_ms = int(time.time() * 1000)
                    if 200 <= response.status < 300:  # twitchAPI would sleep out an empty bucket here, deaf to a stop request;
                        return response  # the pacing above waits before the next request instead
                    return await self._checked(session, response, method, path, url, auth_type, required_scope, data, retries)
                reason, delay = str(response.status), self._retry_after(response)
                response.release()
            self.retries[reason] = self.retries.get(reason, 0) + 1
            self.health.failing("the Helix API", f"{method} {path}: {reason}")
            if attempt == self.max_attempts:
                break
            delay = self.backoff.next_delay() if delay is None else delay
            _LOG.debug("Helix %s %s: %s, retry %d/%d in %.1fs", method, path, reason, attempt, self.max_attempts - 1, delay)
            await self.pause(delay)
        raise TransientError(f"Helix {method} {path} still failing after {self.max_attempts} attempts ({reason})")

    async def _checked(self, session, response, method, path, url, auth_type, required_scope, data, retries):
        """twitchAPI's status handling, its errors turned into ours: none of these is cured by waiting."""
        where = f"{method} {path}"
        try:
            return await self._check_request_return(session, response, method, url, auth_type, required_scope, data, retries)
        except TwitchResourceNotFound:
            raise ConfigurationError(f"Helix answered 404 Not Found to {where}: {_env('twitch_api_url')}={self.base_url!r} "
                                     "must be the Helix root, such as https://api.twitch.tv/helix/") from None
        except TwitchAuthorizationException as err:
            raise ConfigurationError(f"Helix refused {where} ({err or '401 Unauthorized'}) even with a fresh app token: check {CREDENTIALS}") from None
        except TwitchBackendException as err:
            raise TransientError(f"Helix {where}: {err}") from None
        except TwitchAPIException as err:  # 400 and the other 4xx twitchAPI names
            raise ConfigurationError(f"Helix rejected {where} ({err}): check {_env('twitch_api_url')}={self.base_url!r} "
                                     f"and {_env('twitch_tracked_games')}") from None

    async def pause(self, seconds: float) -> None:
        """Sleep, unless a stop request comes first (then raise :class:`Stopped`)."""
        if self.stop is None:
            await asyncio.sleep(seconds)
            return
        try:
            await asyncio.wait_for(self.stop.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            return
        raise Stopped()

    def _retry_after(self, response) -> float | None:
        if response.status == 429 and self.rate.reset_at:
            return min(self.backoff.max_s, max(self.rate.reset_at - time.time(), 0.0) + 0.05)
        return None


def _base(settings: Settings, name: str, default: str) -> str:
    """The configured base URL (or Twitch's), checked at start: without a scheme every request would fail as
    a network error and be retried forever."""
    url = getattr(settings, name) or default
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(f"{_env(name)}={url!r} is not an http(s) URL; write it in full, such as http://127.0.0.1:8080/mock/")
    return url.rstrip("/") + "/"


async def connect_helix(settings: Settings, **client_options: Any) -> PacedTwitch:
    """An app-authenticated client (client-credentials flow) for the configured Helix endpoint."""
    if not settings.twitch_credentials_set:
        raise ConfigurationError("the Twitch source needs TWITCH_CLIENT_ID and TWITCH_CLIENT_SECRET (or APP_ID / APP_SECRET) in the environment or .env")
    twitch = PacedTwitch(settings.twitch_client_id, settings.twitch_client_secret, authenticate_app=False,
                         base_url=_base(settings, "twitch_api_url", TWITCH_API_BASE_URL),
                         auth_base_url=_base(settings, "twitch_auth_url", TWITCH_AUTH_BASE_URL), **client_options)
    try:
        await twitch.authenticate_app([])
    except TwitchAuthorizationException:
        raise ConfigurationError(f"Twitch refused the app credentials (check {CREDENTIALS})") from None
    except aiohttp.ClientError as err:
        raise ConfigurationError(f"cannot reach the Twitch auth endpoint {twitch.auth_base_url} ({type(err).__name__}): "
                                 f"check {_env('twitch_auth_url')} and the network") from None
    return twitch


@dataclass
class PollResult:
    games: int = 0
    users: int = 0  # profiles published, first seen, changed or republished
    republished: int = 0  # of which unchanged, published again so the enrichment does not forget them
    streams: int = 0
    planned_streams: int = 0  # snapshots the poll fetched (more than ``streams`` when a bounded run ended in it)
    duplicates_across_pages: int = 0
    complete: bool = True  # False once a bounded run has sent all its events


@dataclass
class PollStats:
    """What the topics do not show: how the polls went. Retries and rate-limit waits are the client's."""

    polls: int = 0  # started
    complete: int = 0
    skipped: int = 0  # still failing after every retry; the next poll goes on
    republished: int = 0
    partial: PollResult | None = None  # the poll a bounded run (--events) ended in
    last_error: str = ""


class HelixPoller:
    """One poll = top games, live streams (tracked games or top N), profiles not seen recently.

    Profiles and games are published before the stream snapshots of the same poll, when first seen or
    changed (the topics are compacted changelogs; ``data_retrieved_at`` is the version), and a profile also
    when it is due again (producers/profiles.py). Each snapshot carries the time its page was fetched; the
    games and profiles of a poll carry the poll's start, no later than any of its snapshots, so the
    enrichment's temporal join finds them.
    """

    def __init__(self, twitch: Twitch, publisher, settings: Settings, clock=time.time):
        self.twitch = twitch
        self.publisher = publisher
        self.settings = settings
        self.clock = clock
        self.stats = PollStats()
        self.profiles = PublishedProfiles(settings.state_ttl_s)
        self._games: dict[str, tuple] = {}  # game_id -> last published fingerprint
        self._users: dict[str, tuple[int, tuple]] = {}  # user_id -> (fetched at, epoch ms; last fetched fingerprint)
        self._tracked: list[str] | None = None
        self.polling_since_ms: int | None = None  # event time of the poll in progress (heartbeats stay behind it)

    async def run(self, done: asyncio.Event) -> None:
        """Poll every ``twitch_poll_interval_s`` until ``done`` is set or a bounded run is complete (then set it).

        A poll still failing after every retry is skipped and counted; a :class:`ConfigurationError` ends the
        run (the caller prints its one line). A stop request (``done``) also ends any retry or rate-limit wait.
        """
        self.twitch.stop = done
        while not done.is_set():
            began = time.monotonic()
            try:
                result = await self.poll_once()
            except Stopped:
                return
            except TransientError as err:
                self.stats.skipped += 1
                self.stats.last_error = str(err)
                _LOG.debug("poll skipped: %s", err)  # the outage itself is logged once, when it starts
            else:
                if not result.complete:
                    done.set()
                    return
            try:
                await asyncio.wait_for(done.wait(), timeout=max(0.0, self.settings.twitch_poll_interval_s - (time.monotonic() - began)))
            except asyncio.TimeoutError:
                pass

    @property
    def failure(self) -> str:
        """Why the run got nothing from Helix (every poll failed, the last one maybe ended by a stop request); "" if it did."""
        s, health = self.stats, self.twitch.health
        if s.complete or s.partial is not None or not (s.skipped or health.state != "ok"):
            return ""
        return f"every Helix poll failed ({s.polls} tried); the last: {s.last_error or health.last_error}"

    def summary(self) -> str:
        """One line for the run's summary."""
        s, rate, retries = self.stats, self.twitch.rate, self.twitch.retries
        line = f"helix: {s.polls} polls, {s.complete} complete, {s.skipped} skipped"
        if s.partial is not None:
            line += (f", the last cut short by --events after {s.partial.streams} of {s.partial.planned_streams} snapshots"
                     f" ({s.partial.users} profiles, {s.partial.games} games)")
        line += f"; {s.republished} profiles republished"
        line += f"; retries: {', '.join(f'{n} x {reason}' for reason, n in sorted(retries.items())) or 'none'}"
        line += f"; rate-limit waits: {rate.waits} ({rate.waited_s:.1f} s)"
        if s.skipped:
            line += f"; last error: {s.last_error}"
        return line

    async def poll_once(self) -> PollResult:
        now_ms = int(self.clock() * 1000)
        self.polling_since_ms = now_ms
        self.stats.polls += 1
        try:
            result = await self._poll(now_ms)
        except aiohttp.ContentTypeError as err:  # a 200 that is not JSON: some web page, not Helix
            raise ConfigurationError(f"{err.request_info.url.path} answered {err.headers.get('Content-Type') if err.headers else 'without a type'} "
                                     f"instead of Helix JSON: check {_env('twitch_api_url')}") from None
        except (aiohttp.ClientError, asyncio.TimeoutError) as err:  # a page cut off mid-body
            raise TransientError(f"Helix: {type(err).__name__} {err}") from None
        finally:
            self.polling_since_ms = None
        self.stats.republished += result.republished
        if result.complete:
            self.stats.complete += 1
        else:
            self.stats.partial = result
        return result

    async def _poll(self, now_ms: int) -> PollResult:
        retrieved = iso_ms(now_ms)
        result = PollResult()
        games = {g.id: g async for g in _take(self.twitch.get_top_games(first=min(HELIX_PAGE, max(self.settings.twitch_top_games, 1))), self.settings.twitch_top_games)}
        streams: dict[str, tuple[Any, int]] = {}  # stream_id -> (stream, when its page was fetched)
        async for stream in self._live_streams():
            if stream.id in streams:  # Helix pages can repeat a stream whose rank moved between two pages
                result.duplicates_across_pages += 1
                continue
            # pages are fetched lazily: the latest response is this stream's page
            streams[stream.id] = (stream, max(now_ms, self.twitch.last_response_ms or now_ms))
        result.planned_streams = len(streams)
        unknown_games = sorted({s.game_id for s, _ in streams.values() if s.game_id and s.game_id not in games and s.game_id not in self._games})
        for chunk in _chunks(unknown_games, HELIX_PAGE):
            games.update({g.id: g async for g in self.twitch.get_games(game_ids=chunk)})
        wanted = sorted({s.user_id for s, _ in streams.values() if self._profile_wanted(s.user_id, now_ms)})
        users = []
        for chunk in _chunks(wanted, HELIX_PAGE):
            users += [u async for u in self.twitch.get_users(user_ids=chunk)]

        for game in games.values():
            event = {"game_id": game.id, "name": game.name, "box_art_url": game.box_art_url or "", "igdb_id": game.igdb_id or "",
                     "data_retrieved_at": retrieved}
            fingerprint = (event["name"], event["box_art_url"], event["igdb_id"])
            if self._games.get(game.id) != fingerprint:
                if not self.publisher.publish(TWITCH_GAMES.name, event, now_ms):
                    result.complete = False
                    return result
                self._games[game.id] = fingerprint
                result.games += 1
        for user in users:
            event = {"user_id": user.id, "login": user.login, "display_name": user.display_name,
                     "broadcaster_type": user.broadcaster_type or "", "description": user.description or "",
                     "created_at": iso_ms(datetime_ms(user.created_at)), "data_retrieved_at": retrieved}
            fingerprint = tuple(v for k, v in event.items() if k != "data_retrieved_at")
            previous = self._users.get(user.id)
            self._users[user.id] = (now_ms, fingerprint)
            changed = previous is None or previous[1] != fingerprint
            if changed or self.profiles.due(user.id, now_ms):
                if not self.publisher.publish(TWITCH_USERS.name, event, now_ms):
                    result.complete = False
                    return result
                self.profiles.published(user.id, now_ms)
                result.users += 1
                result.republished += not changed
        for stream, fetched_ms in streams.values():
            if not self.publisher.publish(GAME_STREAMS.name, stream_event(stream, iso_ms(fetched_ms)), fetched_ms):
                result.complete = False
                return result
            result.streams += 1
        return result

    def _profile_wanted(self, user_id: str, now_ms: int) -> bool:
        """Fetch a profile never seen, not fetched for ``twitch_profile_refresh_s``, or due to be republished."""
        seen = self._users.get(user_id)
        return (seen is None or now_ms - seen[0] >= self.settings.twitch_profile_refresh_s * 1000
                or self.profiles.due(user_id, now_ms))

    async def _live_streams(self) -> AsyncIterator[Any]:
        cap = self.settings.twitch_top_streams
        tracked = await self._tracked_game_ids()
        if not tracked:
            async for stream in _take(self.twitch.get_streams(first=HELIX_PAGE, stream_type="live"), cap):
                yield stream
            return
        seen = 0
        for chunk in _chunks(tracked, HELIX_PAGE):
            async for stream in _take(self.twitch.get_streams(first=HELIX_PAGE, game_id=chunk, stream_type="live"), cap - seen):
                seen += 1
                yield stream

    async def _tracked_game_ids(self) -> list[str]:
        if self._tracked is None:
            entries = [e.strip() for e in self.settings.twitch_tracked_games.split(",") if e.strip()]
            ids = [e for e in entries if e.isdigit()]
            names = [e for e in entries if not e.isdigit()]
            for chunk in _chunks(names, HELIX_PAGE):
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
