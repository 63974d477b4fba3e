"""A synthetic Twitch: channels go live and offline, viewers and chat follow heavy-tailed laws.

What it reproduces, because the pipeline's results depend on it:

* viewers: a few streams hold most viewers (log-normal popularity, boosted for partners and for
  popular games; games themselves follow a Zipf law), a viewer count ramps up after the start and
  drifts between polls;
* languages with English dominant, each with its own prime time (stream starts follow it),
  ~15 % mature channels, partner/affiliate/none broadcaster types;
* stream durations (log-normal, median ~2.5 h) and offline gaps, category switches mid-stream;
* profile changes now and then (new description, partner upgrade) published as new versions, and a
  few channels whose profile arrives late or never (the join downstream must cope); a profile not
  published for half the state TTL is published again when its channel is live (producers/profiles.py);
* chat proportional to (a sub-linear power of) viewers, with emotes, questions, mentions, replies
  and spam.

Time is simulated: the world advances one Helix poll interval per tick, so a run is exactly
reproducible from (seed, start time) whatever the wall clock or the send rate does.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from dataclasses import dataclass, field
from typing import Any, Iterator

from connectors.topics import CHAT_MESSAGES, GAME_STREAMS, TWITCH_GAMES, TWITCH_USERS
from producers.contracts import HELIX_PAGE, iso_ms, mentions, stream_event_id
from producers.profiles import PublishedProfiles
from producers.synthetic_chat import Chatter, ChatWriter
from twitch_pipeline.settings import Settings

# (code, share of channels, Helix tag, prime-time hour in UTC)
LANGUAGES = (
    ("en", 0.40, "English", 1), ("es", 0.10, "Spanish", 1), ("pt", 0.07, "Portuguese", 23), ("de", 0.06, "German", 19),
    ("ja", 0.06, "Japanese", 12), ("ru", 0.05, "Russian", 17), ("fr", 0.05, "French", 19), ("ko", 0.04, "Korean", 13),
    ("it", 0.03, "Italian", 19), ("zh", 0.03, "Chinese", 13), ("pl", 0.02, "Polish", 19), ("tr", 0.02, "Turkish", 18),
    ("other", 0.07, "", 15),
)
BROADCASTER_TYPES = (("partner", 0.04, 6.0), ("affiliate", 0.46, 1.5), ("", 0.50, 0.4))  # (type, share, popularity boost)
MATURE_SHARE = 0.15
LATE_PROFILE_SHARE = 0.02  # profile published 1-3 polls after the first snapshot
MISSING_PROFILE_SHARE = 0.005  # profile never published
# Helix allows an app 800 requests a minute: a poller fetching its pages back to back at that limit gets one every 75 ms
PAGE_MS = 75

_CATEGORIES = (
    "Just Chatting", "Grand Theft Auto V", "League of Legends", "VALORANT", "Counter-Strike", "Fortnite", "Minecraft",
    "Dota 2", "World of Warcraft", "Apex Legends", "Call of Duty: Warzone", "Overwatch 2", "Rocket League",
    "Hearthstone", "Dead by Daylight", "Teamfight Tactics", "Elden Ring", "Escape from Tarkov", "Slots", "Music",
    "Art", "Software and Game Development", "Chess", "Rust", "Lost Ark", "EA Sports FC 25", "Path of Exile",
    "Marvel Rivals", "The Sims 4", "Pokémon Scarlet and Violet", "Special Events", "Sports", "ASMR", "Talk Shows & Podcasts",
)
_WORDS_A = ("Crimson", "Stellar", "Hollow", "Iron", "Neon", "Silent", "Feral", "Golden", "Frozen", "Shattered", "Lucky", "Wild")
_WORDS_B = ("Harbor", "Drift", "Kingdom", "Protocol", "Frontier", "Dungeon", "Garden", "Circuit", "Legends", "Tactics", "Rally", "Saga")
_TAGS = ("Chill", "Competitive", "FPS", "RPG", "NoBackseating", "DropsEnabled", "Speedrun", "VTuber", "Casual", "Funny",
         "Esports", "Educational", "PlayingWithViewers", "Cozy", "Challenge", "Tournament", "Ranked", "Roleplay")
_TITLES = ("{game} grind | !discord", "day {n} of {game}", "RANKED until I drop", "chill {game} with chat",
           "[DROPS] {game} all day", "first time playing {game}!", "road to top 500 | {game}", "{game} then maybe horror games",
           "subathon day {n} 🎉", "late night {game} 🌙", "learning {game}, no backseat pls", "{game} w/ the squad | !socials")
_DESCRIPTIONS = ("Variety streamer. Be nice.", "Competitive player, coach and caster.", "Streaming every day at 8pm.",
                 "Just vibes.", "Speedrunner and chat enthusiast.", "Business inquiries: see panels.", "", "Artist & gamer.",
                 "Professional backseater, amateur player.", "Cozy games and good company ☕")
_SYLLABLES = ("ka", "zu", "mi", "ro", "xe", "lo", "ta", "vi", "ne", "shi", "qu", "do", "ra", "pe", "ly", "on", "ix", "ar")


@dataclass
class Game:
    game_id: str
    name: str
    igdb_id: str
    weight: float
    art_version: int = 0
    published: bool = False

    def event(self, now_ms: int) -> dict[str, Any]:
        return {"game_id": self.game_id, "name": self.name,
                "box_art_url": f"https://static-cdn.jtvnw.net/ttv-boxart/{self.game_id}_IGDB-{{width}}x{{height}}.jpg?v={self.art_version}",
                "igdb_id": self.igdb_id, "data_retrieved_at": iso_ms(now_ms)}


@dataclass
class Channel:
    index: int
    user_id: str
    login: str
    display_name: str
    broadcaster_type: str
    description: str
    created_at_ms: int
    language: str
    mature: bool
    popularity: float
    favourite_games: list[int]
    profile_lag: int | None  # polls of delay of the first profile; None = on time, -1 = never
    next_start_ms: int = 0
    published: bool = False
    emotes: list[tuple[str, str]] = field(default_factory=list)

    def profile(self, now_ms: int) -> dict[str, Any]:
        return {"user_id": self.user_id, "login": self.login, "display_name": self.display_name,
                "broadcaster_type": self.broadcaster_type, "description": self.description,
                "created_at": iso_ms(self.created_at_ms), "data_retrieved_at": iso_ms(now_ms)}


@dataclass
class Stream:
    stream_id: str
    channel: Channel
    game: Game
    started_at_ms: int
    ends_at_ms: int
    title: str
    tags: list[str]
    level: float  # current viewer level before the start-up ramp
    recent_chat: list[tuple[str, str]] = field(default_factory=list)


Emission = tuple[str, dict[str, Any], int]  # (topic, event, event time in epoch ms)


class World:
    def __init__(self, seed: int, start_ms: int, *, channels: int = 3000, games: int = 300, poll_interval_s: float = 60.0,
                 chatters: int = 20000, state_ttl_s: float = Settings.state_ttl_s):
        self.rng = random.Random(seed)
        self.profiles = PublishedProfiles(state_ttl_s)
        self.interval_ms = int(poll_interval_s * 1000)
        self.now_ms = start_ms
        self.chat = ChatWriter(self.rng)
        self.games = [self._game(i) for i in range(games)]
        self._game_weights = _cumulative([g.weight for g in self.games])
        self.chatters = [self._chatter(i) for i in range(chatters)]
        self.channels = [self._channel(i, start_ms) for i in range(channels)]
        self.live: list[Stream] = []
        self._stream_seq = 0
        self._late_profiles: list[tuple[int, Channel]] = []
        self._bootstrap(start_ms)

    # -- construction -------------------------------------------------------------------------------
    def _game(self, i: int) -> Game:
        rng = self.rng
        name = _CATEGORIES[i] if i < len(_CATEGORIES) else f"{rng.choice(_WORDS_A)} {rng.choice(_WORDS_B)}" + (f" {i}" if rng.random() < 0.5 else "")
        igdb = str(rng.randint(1000, 300000)) if rng.random() < 0.9 else ""
        return Game(str(20000 + i * 37 + rng.randint(0, 30)), name, igdb, 1.0 / (i + 1) ** 1.1)

    def _chatter(self, i: int) -> Chatter:
        login = self._login() + str(i)
        return Chatter(str(500_000_000 + i), login, login.capitalize() if self.rng.random() < 0.3 else login)

    def _login(self) -> str:
        return "".join(self.rng.choice(_SYLLABLES) for _ in range(self.rng.randint(2, 4)))

    def _channel(self, i: int, start_ms: int) -> Channel:
        rng = self.rng
        language = _pick(rng, LANGUAGES)
        btype, boost = _pick_type(rng)
        login = f"{self._login()}_{i}" if rng.random() < 0.5 else f"{self._login()}{i}"
        favourites = [_draw(rng, self._game_weights) for _ in range(rng.choice((1, 1, 2, 3, 5)))]
        lag_roll = rng.random()
        lag = -1 if lag_roll < MISSING_PROFILE_SHARE else rng.randint(1, 3) if lag_roll < MISSING_PROFILE_SHARE + LATE_PROFILE_SHARE else None
        created = start_ms - int((30 + 5000 * rng.random() ** 1.5) * 86_400_000)
        channel = Channel(i, str(10_000_000 + i * 7919), login, login.upper() if rng.random() < 0.1 else login, btype,
                          rng.choice(_DESCRIPTIONS), created, language, rng.random() < MATURE_SHARE,
                          rng.lognormvariate(1.0, 1.5) * boost, favourites, lag)
        channel.emotes = self.chat.channel_emotes(login, channel.user_id) if btype else []
        return channel

    def _bootstrap(self, start_ms: int) -> None:
        """The state at the start: about a third of the channels are live, started at various times."""
        for channel in self.channels:
            if self.rng.random() < 1 / 3:
                duration = self._duration()
                started = start_ms - int(duration * self.rng.random())
                self._start(channel, started, started + duration)
            else:
                channel.next_start_ms = start_ms + self._offline_gap(channel, start_ms)

    # -- laws -----------------------------------------------------------------------------------------
    def _duration(self) -> int:
        hours = min(max(self.rng.lognormvariate(math.log(2.5), 0.6), 0.2), 24.0)
        return int(hours * 3_600_000)

    def _offline_gap(self, channel: Channel, from_ms: int) -> int:
        """Gap to the next stream, biased towards the channel language's prime time (rejection sampling)."""
        peak = next(p for code, _, _, p in LANGUAGES if code == channel.language)
        for _ in range(4):
            gap = int(self.rng.lognormvariate(math.log(4.0), 0.8) * 3_600_000)
            hour = ((from_ms + gap) // 3_600_000) % 24
            if self.rng.random() < 0.55 + 0.45 * math.cos(2 * math.pi * (hour - peak) / 24):
                break
        return max(gap, 60_000)

    def _viewers(self, stream: Stream, now_ms: int) -> int:
        minutes_live = (now_ms - stream.started_at_ms) / 60_000
        ramp = min(1.0, max(minutes_live, 1.0) / 20.0) ** 0.5
        stream.level *= math.exp(self.rng.gauss(0.0, 0.06))
        return int(stream.level * ramp)

    def _chat_per_minute(self, viewers: int) -> float:
        return min(0.075 * viewers ** 0.8, 300.0)

    # -- stream lifecycle ------------------------------------------------------------------------------
    def _start(self, channel: Channel, started_ms: int, ends_ms: int) -> None:
        game = self.games[self.rng.choice(channel.favourite_games) if self.rng.random() < 0.9 else _draw(self.rng, self._game_weights)]
        self._stream_seq += 1
        level = channel.popularity * (1.0 + 10.0 * game.weight) * self.rng.lognormvariate(0.0, 0.3)
        stream = Stream(str(40_000_000_000 + self._stream_seq * 13 + channel.index % 13), channel, game, started_ms, ends_ms,
                        self._title(game), self._tags(channel), level)
        self.live.append(stream)

    def _title(self, game: Game) -> str:
        return self.rng.choice(_TITLES).format(game=game.name, n=self.rng.randint(1, 400))[:140]

    def _tags(self, channel: Channel) -> list[str]:
        tags = self.rng.sample(_TAGS, k=self.rng.choice((0, 1, 2, 3, 4)))
        tag = next(t for code, _, t, _ in LANGUAGES if code == channel.language)
        return ([tag] if tag else []) + tags

    # -- the clock ----------------------------------------------------------------------------------------
    def events(self) -> Iterator[Emission]:
        """Every event of the world in event-time order, poll after poll, forever."""
        while True:
            yield from self._tick(self.now_ms)
            self.now_ms += self.interval_ms

    def _tick(self, now: int) -> Iterator[Emission]:
        rng = self.rng
        ended = [s for s in self.live if s.ends_at_ms <= now]
        if ended:
            self.live = [s for s in self.live if s.ends_at_ms > now]
            for stream in ended:
                stream.channel.next_start_ms = stream.ends_at_ms + self._offline_gap(stream.channel, stream.ends_at_ms)
        live_channels = {s.channel.index for s in self.live}
        for channel in self.channels:
            if channel.next_start_ms <= now and channel.index not in live_channels:
                self._start(channel, channel.next_start_ms, channel.next_start_ms + self._duration())
                channel.next_start_ms = 1 << 62
        yield from self._profiles_due(now)
        for stream in self.live:
            yield from self._first_sight(stream, now)
            if rng.random() < 0.003:
                stream.game = self.games[_draw(rng, self._game_weights)]
                yield from self._first_sight(stream, now)
            if rng.random() < 0.01:
                stream.title = self._title(stream.game)
            if rng.random() < 0.002:
                yield from self._profile_change(stream.channel, now)
        if rng.random() < 0.05:
            game = self.games[_draw(rng, self._game_weights)]
            if game.published:
                game.art_version += 1
                yield TWITCH_GAMES.name, game.event(now), now
        snapshot = [(self._viewers(s, now), s) for s in self.live]
        snapshot.sort(key=lambda vs: -vs[0])  # Helix returns streams by viewers, descending
        # heapq.merge is stable: a page and a chat message at the same time keep this order
        yield from heapq.merge(self._pages(snapshot, now), self._chat(snapshot, now), key=lambda emission: emission[2])

    def _pages(self, snapshot: list[tuple[int, Stream]], now: int) -> Iterator[Emission]:
        """The poll's snapshots, a Helix page of 100 at a time, each page stamped with its own fetch time as the
        Helix poller stamps them: a page every PAGE_MS, closer together when the poll's pages would not fit its
        interval. (Until session 14 every snapshot of a poll carried the poll's start: at ~11,000/s the last
        ones were sent ~0.9 s after that time, and the pipeline received each second's rows in one burst.)"""
        pages = math.ceil(len(snapshot) / HELIX_PAGE)
        every = min(PAGE_MS, self.interval_ms // max(pages, 1))
        for page in range(pages):
            at = now + page * every
            retrieved = iso_ms(at)
            for viewers, stream in snapshot[page * HELIX_PAGE : (page + 1) * HELIX_PAGE]:
                yield GAME_STREAMS.name, self._snapshot(stream, viewers, retrieved), at

    def _first_sight(self, stream: Stream, now: int) -> Iterator[Emission]:
        """Users and games are published before the first snapshot that needs them (bar the late few), and a
        profile again before a snapshot once it is due (producers/profiles.py), at the snapshot's event time."""
        channel, game = stream.channel, stream.game
        if channel.published and self.profiles.due(channel.user_id, now):  # back after a while: before its snapshot
            yield self._publish_profile(channel, now)
        elif not channel.published and channel.profile_lag is None:
            yield self._publish_profile(channel, now)
        elif not channel.published and channel.profile_lag and channel.profile_lag > 0:
            self._late_profiles.append((now + channel.profile_lag * self.interval_ms, channel))
            channel.profile_lag = 0  # scheduled
        if not game.published:
            game.published = True
            yield TWITCH_GAMES.name, game.event(now), now

    def _profiles_due(self, now: int) -> Iterator[Emission]:
        due = [c for t, c in self._late_profiles if t <= now]
        if due:
            self._late_profiles = [(t, c) for t, c in self._late_profiles if t > now]
            for channel in due:
                yield self._publish_profile(channel, now)

    def _publish_profile(self, channel: Channel, now: int) -> Emission:
        channel.published = True
        self.profiles.published(channel.user_id, now)
        return TWITCH_USERS.name, channel.profile(now), now

    def _profile_change(self, channel: Channel, now: int) -> Iterator[Emission]:
        roll = self.rng.random()
        if roll < 0.6:
            channel.description = self.rng.choice(_DESCRIPTIONS)
        elif roll < 0.8:
            channel.display_name = channel.login.capitalize() if channel.display_name == channel.login else channel.login
        else:
            channel.broadcaster_type = {"": "affiliate", "affiliate": "partner"}.get(channel.broadcaster_type, "partner")
        if channel.published:
            yield self._publish_profile(channel, now)

    def _snapshot(self, stream: Stream, viewers: int, retrieved: str) -> dict[str, Any]:
        channel = stream.channel
        return {"event_id": stream_event_id(stream.stream_id, retrieved), "stream_id": stream.stream_id,
                "user_id": channel.user_id, "user_login": channel.login, "user_name": channel.display_name,
                "game_id": stream.game.game_id, "game_name": stream.game.name, "stream_type": "live", "title": stream.title,
                "viewer_count": viewers, "started_at": iso_ms(stream.started_at_ms), "language": channel.language,
                "is_mature": channel.mature, "tags": stream.tags, "data_retrieved_at": retrieved}

    def _chat(self, snapshot: list[tuple[int, Stream]], now: int) -> Iterator[Emission]:
        rng = self.rng
        planned: list[tuple[int, Stream]] = []
        minutes = self.interval_ms / 60_000
        for viewers, stream in snapshot:
            expected = self._chat_per_minute(viewers) * minutes
            for _ in range(_poisson(rng, expected)):
                planned.append((now + int(rng.random() * self.interval_ms), stream))
        planned.sort(key=lambda ts: ts[0])
        for sent_at, stream in planned:
            yield CHAT_MESSAGES.name, self._message(stream, sent_at), sent_at

    def _message(self, stream: Stream, sent_at: int) -> dict[str, Any]:
        rng, channel = self.rng, stream.channel
        chatter = self.chatters[(int(len(self.chatters) * rng.random() ** 3) + channel.index * 31) % len(self.chatters)]
        line = self.chat.line(channel.language, channel.emotes, stream.recent_chat)
        stream.recent_chat.append((line.message_id, chatter.login))
        del stream.recent_chat[:-8]
        return {"message_id": line.message_id, "channel": channel.login, "channel_id": channel.user_id,
                "chatter_id": chatter.user_id, "chatter_login": chatter.login, "chatter_name": chatter.display_name,
                "text": line.text, "emotes": line.emotes, "badges": _badges(chatter, channel),
                "reply_parent_message_id": line.reply_to, "mentions": mentions(line.text),
                "sent_at": iso_ms(sent_at), "data_retrieved_at": iso_ms(sent_at + 40 + int(rng.random() * 400))}


def _badges(chatter: Chatter, channel: Channel) -> list[dict[str, str]]:
    """Stable per (chatter, channel): the same person wears the same badges in one channel."""
    h = (int(chatter.user_id) * 2654435761 + channel.index * 40503) % 1000
    badges = []
    if h < 15:
        badges.append({"set_id": "moderator", "id": "1"})
    elif h < 30:
        badges.append({"set_id": "vip", "id": "1"})
    if h % 10 < 3:
        badges.append({"set_id": "subscriber", "id": str((0, 1, 3, 6, 9, 12, 24, 36)[h % 8])})
    if h % 7 == 0:
        badges.append({"set_id": "premium", "id": "1"})
    if h % 19 == 0:
        badges.append({"set_id": "bits", "id": ("100", "1000", "5000")[h % 3]})
    return badges


def _pick(rng: random.Random, languages) -> str:
    u = rng.random()
    for code, share, _, _ in languages:
        u -= share
        if u < 0:
            return code
    return languages[-1][0]


def _pick_type(rng: random.Random) -> tuple[str, float]:
    u = rng.random()
    for btype, share, boost in BROADCASTER_TYPES:
        u -= share
        if u < 0:
            return btype, boost
    return BROADCASTER_TYPES[-1][0], BROADCASTER_TYPES[-1][2]


def _cumulative(weights: list[float]) -> list[float]:
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return [c / total for c in out]


def _draw(rng: random.Random, cumulative: list[float]) -> int:
    return min(bisect.bisect_left(cumulative, rng.random()), len(cumulative) - 1)


def _poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    if mean > 30:  # normal approximation: exact enough for chat volumes, and O(1)
        return max(0, int(round(rng.gauss(mean, math.sqrt(mean)))))
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k
