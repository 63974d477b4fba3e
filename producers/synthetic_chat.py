"""Chat text for the synthetic source: emotes with exact positions, questions, mentions, replies, spam.

Messages are assembled from words so the emote positions are known exactly, the way Twitch reports
them (code-point offsets, ``end`` inclusive); mentions are extracted from the final text by the very
rule the live chat ingestion uses, so both sources produce the same facts.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass

# Twitch global emotes (name, id).
GLOBAL_EMOTES = (
    ("Kappa", "25"), ("LUL", "425618"), ("PogChamp", "305954156"), ("BibleThump", "86"), ("Kreygasm", "41"),
    ("4Head", "354"), ("ResidentSleeper", "245"), ("NotLikeThis", "58765"), ("SeemsGood", "64138"),
    ("HeyGuys", "30259"), ("VoHiYo", "81274"), ("CoolCat", "58127"), ("DansGame", "33"), ("SwiftRage", "34"),
    ("WutFace", "28087"), ("PJSalt", "36"), ("Jebaited", "114836"), ("CoolStoryBob", "123171"),
)
_CHANNEL_EMOTE_SUFFIXES = ("Hype", "Love", "Rage", "GG", "Wave", "Cry", "Lurk", "Pog", "Clap", "Laugh")

_PLAIN = (
    "gg", "nice", "lets go", "that was clean", "no way", "clip it", "first time here", "hi chat", "W", "L",
    "this song slaps", "unlucky", "he's cooking", "wait what", "insane play", "so close", "back from work",
    "good morning from the other side of the planet", "chat is wild today", "lurking", "that boss is brutal",
    "o7", "lol", "true", "based", "rip", "easy", "what a comeback", "love this game", "stream looks great today",
)
_QUESTIONS = (
    "what rank is this?", "how long have you been streaming?", "is this the new patch?", "what keyboard do you use?",
    "what's the song?", "when is the next stream?", "is this game worth it?", "what sens do you play on?",
    "how many hours in this game?", "did you beat the boss yet?", "where are you from?", "what build is this?",
)
_BY_LANGUAGE = {
    "es": ("hola", "jajaja", "qué jugada", "vamos"), "pt": ("kkkkk", "boa noite", "que isso"),
    "de": ("moin", "digga", "sauber"), "fr": ("mdr", "bien joué", "salut tout le monde"),
    "ja": ("草", "おつかれ", "すごい"), "ko": ("ㅋㅋㅋ", "안녕하세요", "대박"), "ru": ("привет", "красава", "ахах"),
    "it": ("ciao", "bella"), "pl": ("siema", "brawo"), "tr": ("selam", "helal"), "zh": ("哈哈哈", "好厉害"),
}
_SPAM = ("WWWWWWWWWWWWWWWW", "check out my stream at twitch tv slash totallyrealpro", "FIRST FIRST FIRST FIRST",
         "free subs at bit ly slash notascam", "!drop !drop !drop !drop")
_COPYPASTA = "I am once again asking chat to stop backseating, the streamer knows what they are doing"


@dataclass(frozen=True)
class Chatter:
    user_id: str
    login: str
    display_name: str


@dataclass
class ChatLine:
    message_id: str
    text: str
    emotes: list[dict]
    reply_to: str | None


class ChatWriter:
    """Writes chat lines for one world; ``rng`` is the world's, so output is deterministic per seed."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def channel_emotes(self, login: str, user_id: str) -> list[tuple[str, str]]:
        prefix = (login[:4] or "chan").lower()
        return [(prefix + suffix, f"emotesv2_{int(user_id):x}{i:02d}") for i, suffix in enumerate(_CHANNEL_EMOTE_SUFFIXES[:4])]

    def line(self, language: str, channel_emotes: list[tuple[str, str]], recent: list[tuple[str, str]]) -> ChatLine:
        """One message; ``recent`` holds (message_id, chatter login) of the channel's last messages (for replies)."""
        rng = self.rng
        words: list[str | tuple[str, str]] = []  # a tuple is an emote (name, id)
        reply_to = None
        roll = rng.random()
        if roll < 0.05 and recent:
            parent_id, parent_login = rng.choice(recent)
            reply_to = parent_id
            words += [f"@{parent_login}", rng.choice(_PLAIN + _QUESTIONS)]
        elif roll < 0.12 and recent:
            words += [f"@{rng.choice(recent)[1]}", rng.choice(_PLAIN)]
        elif roll < 0.22:
            words.append(rng.choice(_QUESTIONS))
        elif roll < 0.37:
            words += [self._emote(channel_emotes) for _ in range(rng.choice((1, 1, 1, 2, 3, 5)))]
        elif roll < 0.40:
            words.append(rng.choice(_SPAM) if rng.random() < 0.7 else _COPYPASTA)
        else:
            local = _BY_LANGUAGE.get(language)
            words.append(rng.choice(local) if local and rng.random() < 0.5 else rng.choice(_PLAIN))
            if rng.random() < 0.35:
                words.append(self._emote(channel_emotes))
        text, emotes = _assemble(words)
        return ChatLine(str(uuid.UUID(int=rng.getrandbits(128), version=4)), text, emotes, reply_to)

    def _emote(self, channel_emotes: list[tuple[str, str]]) -> tuple[str, str]:
        pool = channel_emotes if channel_emotes and self.rng.random() < 0.4 else GLOBAL_EMOTES
        return self.rng.choice(pool)


def _assemble(words: list) -> tuple[str, list[dict]]:
    parts: list[str] = []
    emotes: list[dict] = []
    at = 0
    for word in words:
        if parts:
            parts.append(" ")
            at += 1
        if isinstance(word, tuple):
            name, emote_id = word
            emotes.append({"id": emote_id, "name": name, "begin": at, "end": at + len(name) - 1})
            word = name
        parts.append(word)
        at += len(word)
    return "".join(parts), emotes
