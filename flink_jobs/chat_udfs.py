"""Per-message work of the chat pipeline: contract check, Twitch-aware sentiment and message features.

The logic is plain Python over pandas Series (unit-tested without Flink); :func:`parse_chat_udf` wraps it
as the one vectorized (pandas) UDF the `chat_enrich` job calls, so a batch of records crosses the
Java/Python boundary once, as Arrow, and every record is decoded, checked and scored in one pass.

Sentiment is VADER's compound score (-1..1) with its lexicon extended by ``data/twitch_lexicon.tsv``:
global and third-party emotes, slang (W, L, +2, o7, GG) and channel-emote suffixes (``pokiHype`` is a
``Hype``). Emote and slang tokens are lower-cased before scoring, so an all-caps emote (LUL, KEKW) or a
lone ``W`` is read as the word it is, not as VADER's "shouting" emphasis of the words around it.
"""

from __future__ import annotations

import csv
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

LEXICON_PATH = Path(__file__).resolve().parent / "data" / "twitch_lexicon.tsv"
KINDS = ("emote", "slang", "suffix")
STATUS_OK, PARSE_ERROR, SCHEMA_ERROR = "OK", "PARSE_ERROR", "SCHEMA_ERROR"
HEARTBEAT = "HEARTBEAT"  # not a chat message: event time only (producers/heartbeat.py); never in bronze
#: VADER's recommended compound thresholds for negative / neutral / positive.
NEUTRAL_BAND = 0.05
_TOKEN = re.compile(r"\S+")
_MAX_ERROR_CHARS = 1000
_EPOCH, _MILLISECOND = datetime(1970, 1, 1, tzinfo=UTC), timedelta(milliseconds=1)


# ------------------------------------------------------------------------------------------- lexicon
@dataclass(frozen=True)
class Entry:
    token: str
    valence: float
    kind: str
    channel: str = ""


@dataclass
class Lexicon:
    """The Twitch lexicon: words and emotes with a valence, and channel-emote suffixes, global or per channel."""

    entries: tuple[Entry, ...]
    _suffix_patterns: dict[str, re.Pattern | None] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, path: Path = LEXICON_PATH) -> "Lexicon":
        entries = []
        with path.open(encoding="utf-8", newline="") as handle:
            for number, row in enumerate(csv.reader(handle, delimiter="\t"), 1):
                if not row or not row[0].strip() or row[0].startswith("#"):
                    continue
                if len(row) < 3 or row[2] not in KINDS:
                    raise ValueError(f"{path}:{number}: expected `token<TAB>valence<TAB>{'|'.join(KINDS)}[<TAB>channel]`, got {row!r}")
                try:
                    valence = float(row[1])
                except ValueError:
                    raise ValueError(f"{path}:{number}: valence {row[1]!r} is not a number") from None
                if not -4.0 <= valence <= 4.0:
                    raise ValueError(f"{path}:{number}: valence {valence} is outside VADER's scale -4..4")
                entries.append(Entry(row[0].strip(), valence, row[2], (row[3].strip().lower() if len(row) > 3 else "")))
        return cls(tuple(entries))

    def words(self, channel: str = "") -> dict[str, float]:
        """Lower-cased token -> valence of the emote and slang entries that apply to ``channel``."""
        return {e.token.lower(): e.valence for e in self._applying(channel) if e.kind != "suffix"}

    def emotes(self, channel: str = "") -> frozenset[str]:
        """Lower-cased tokens that are emotes (counted as such without a Twitch position)."""
        return frozenset(e.token.lower() for e in self._applying(channel) if e.kind == "emote")

    def suffixes(self, channel: str = "") -> dict[str, float]:
        return {e.token: e.valence for e in self._applying(channel) if e.kind == "suffix"}

    def channels(self) -> frozenset[str]:
        return frozenset(e.channel for e in self.entries if e.channel)

    def suffix_pattern(self, channel: str = "") -> re.Pattern | None:
        """A channel emote: a lower-case prefix of 3-10 characters, then a suffix (longest suffixes first)."""
        if channel not in self._suffix_patterns:
            names = sorted(self.suffixes(channel), key=len, reverse=True)
            self._suffix_patterns[channel] = re.compile(rf"^[a-z][a-z0-9]{{2,9}}({'|'.join(map(re.escape, names))})$") if names else None
        return self._suffix_patterns[channel]

    def _applying(self, channel: str) -> list[Entry]:
        """Global entries, overridden by the channel's own (same token and kind)."""
        chosen: dict[tuple[str, str], Entry] = {}
        for entry in self.entries:
            if not entry.channel:
                chosen.setdefault((entry.token.lower(), entry.kind), entry)
        for entry in self.entries:
            if entry.channel and entry.channel == channel:
                chosen[(entry.token.lower(), entry.kind)] = entry
        return list(chosen.values())


@dataclass(frozen=True)
class _ChannelModel:
    analyzer: Any  # vaderSentiment's SentimentIntensityAnalyzer, its lexicon extended
    words: frozenset[str]  # lower-cased emote and slang tokens of the Twitch lexicon
    emotes: frozenset[str]
    suffix_pattern: re.Pattern | None
    suffixes: dict[str, float]


class Scorer:
    """VADER extended with the lexicon; one analyzer per channel that has entries of its own."""

    def __init__(self, lexicon: Lexicon):
        self.lexicon = lexicon
        self._models: dict[str, _ChannelModel] = {}
        self._own_channels = lexicon.channels()

    def _model(self, channel: str) -> _ChannelModel:
        key = channel if channel in self._own_channels else ""
        if key not in self._models:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

            words = self.lexicon.words(key)
            analyzer = SentimentIntensityAnalyzer()
            analyzer.lexicon.update(words)
            self._models[key] = _ChannelModel(analyzer, frozenset(words), self.lexicon.emotes(key), self.lexicon.suffix_pattern(key), self.lexicon.suffixes(key))
        return self._models[key]

    def is_lexicon_emote(self, token: str, channel: str) -> bool:
        model = self._model(channel)
        return token.lower() in model.emotes or (model.suffix_pattern is not None and model.suffix_pattern.match(token) is not None)

    def score(self, text: str, channel: str, emote_spans: tuple[tuple[int, int], ...] = ()) -> float:
        """VADER compound of ``text`` in [-1, 1]: Twitch words and emotes lower-cased, channel emotes valued by suffix."""
        model = self._model(channel)
        words = []
        for match in _TOKEN.finditer(text):
            token = match.group()
            lower = token.lower()
            if model.suffix_pattern is not None and lower not in model.words and (hit := model.suffix_pattern.match(token)) is not None:
                # Stored under its own lower-cased name so VADER finds it; the names are the emotes of the
                # ingested channels, few enough for the analyzer's lexicon to stay small.
                model.analyzer.lexicon.setdefault(lower, model.suffixes[hit.group(1)])
                token = lower
            elif lower != token and (lower in model.words or _covered(match.start(), match.end(), emote_spans)):
                token = lower
            words.append(token)
        return float(model.analyzer.polarity_scores(" ".join(words))["compound"])


def _covered(begin: int, end: int, spans: tuple[tuple[int, int], ...]) -> bool:
    """Whether the token at [begin, end) lies within one emote span (begin/end inclusive, Twitch-style)."""
    return any(b <= begin and end - 1 <= e for b, e in spans)


# ------------------------------------------------------------------------------------------- features
def char_entropy(text: str) -> float:
    """Shannon entropy of the text's characters (code points), in bits per character; 0 for empty text."""
    n = len(text)
    if n == 0:
        return 0.0
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values()) + 0.0


def sentiment_label(score: float) -> str:
    return "positive" if score >= NEUTRAL_BAND else "negative" if score <= -NEUTRAL_BAND else "neutral"


@dataclass(frozen=True)
class EmoteStats:
    count: int
    ratio: float
    emote_only: bool
    names: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]


def emote_stats(text: str, positions: list[dict], is_lexicon_emote) -> EmoteStats:
    """Emotes of a message: Twitch's positions (code-point indices, ``end`` inclusive, already range-checked),
    plus whole tokens outside them that the lexicon calls emotes (third-party emotes Twitch does not report).

    ratio is emote occurrences per whitespace-separated token (at most 1); emote-only means every token is one.
    """
    spans = tuple((p["begin"], p["end"]) for p in positions)
    names = [text[b:e + 1] for b, e in spans]
    tokens = covered = 0
    for match in _TOKEN.finditer(text):
        tokens += 1
        begin, end = match.start(), match.end()
        if _covered(begin, end, spans):
            covered += 1
        elif not any(b < end and begin <= e for b, e in spans) and is_lexicon_emote(match.group()):
            covered += 1
            names.append(match.group())
    count = len(names)
    return EmoteStats(count, min(1.0, count / tokens) if tokens else 0.0, tokens > 0 and covered == tokens, tuple(names), spans)


def position_errors(text: str, positions: list[dict]) -> list[str]:
    """Emote positions that do not fit the text (code points): such a message breaks the contract."""
    length = len(text)
    return [f"emotes/{i}: positions {p['begin']}..{p['end']} outside the text ({length} code points)"
            for i, p in enumerate(positions) if not p["begin"] <= p["end"] < length]


# ------------------------------------------------------------------------------------------- one record
#: Fields of the UDF's result, in order, with their Flink SQL types (the driver declares the ROW from this).
RESULT_FIELDS: tuple[tuple[str, str], ...] = (
    ("parse_status", "STRING"), ("parse_error", "STRING"),
    ("message_id", "STRING"), ("channel", "STRING"), ("channel_id", "STRING"), ("chatter_id", "STRING"),
    ("chatter_login", "STRING"), ("chatter_name", "STRING"), ("text", "STRING"), ("badges", "STRING"),
    ("reply_parent_message_id", "STRING"), ("mentions", "STRING"), ("data_retrieved_ms", "BIGINT"),
    ("message_length", "INT"), ("char_entropy", "DOUBLE"), ("emote_count", "INT"), ("emote_ratio", "DOUBLE"),
    ("is_emote_only", "BOOLEAN"), ("emote_names", "STRING"), ("sentiment", "DOUBLE"),
    ("is_question", "BOOLEAN"), ("is_mention", "BOOLEAN"), ("is_reply", "BOOLEAN"),
)
_EMPTY = dict.fromkeys(name for name, _ in RESULT_FIELDS)


def parse_record(raw: bytes | None, max_chars: int, scorer: Scorer) -> dict[str, Any]:
    """One Kafka record of chat_messages -> status, error, the message's fields and its features."""
    import orjson

    from producers.contracts import violations

    def failed(status: str, error: str) -> dict[str, Any]:
        return {**_EMPTY, "parse_status": status, "parse_error": error[:_MAX_ERROR_CHARS]}

    if raw is None:
        return failed(PARSE_ERROR, "empty record")
    try:
        payload = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return failed(PARSE_ERROR, f"invalid UTF-8: {exc.reason} at byte {exc.start}")
    if len(payload) > max_chars:
        return failed(PARSE_ERROR, f"oversized: {len(payload)} characters, more than {max_chars}")
    try:
        event = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        return failed(PARSE_ERROR, f"invalid JSON: {exc}")
    if isinstance(event, dict) and event.get("heartbeat") is True:
        return {**_EMPTY, "parse_status": HEARTBEAT}
    problems = violations("chat_messages", event)
    if not problems:
        problems = position_errors(event["text"], event["emotes"])
    if problems:
        return failed(SCHEMA_ERROR, "; ".join(problems))
    text, channel = event["text"], event["channel"]
    emotes = emote_stats(text, event["emotes"], lambda token: scorer.is_lexicon_emote(token, channel))
    return {
        "parse_status": STATUS_OK, "parse_error": None,
        "message_id": event["message_id"], "channel": channel, "channel_id": event["channel_id"],
        "chatter_id": event["chatter_id"], "chatter_login": event["chatter_login"], "chatter_name": event["chatter_name"],
        "text": text, "badges": ",".join(f"{b['set_id']}/{b['id']}" for b in event["badges"]),
        "reply_parent_message_id": event["reply_parent_message_id"], "mentions": ",".join(event["mentions"]),
        "data_retrieved_ms": epoch_ms(event["data_retrieved_at"]),
        "message_length": len(text), "char_entropy": char_entropy(text),
        "emote_count": emotes.count, "emote_ratio": emotes.ratio, "is_emote_only": emotes.emote_only,
        "emote_names": " ".join(emotes.names), "sentiment": scorer.score(text, channel, emotes.spans),
        "is_question": "?" in text or "\uff1f" in text,
        "is_mention": bool(event["mentions"]),
        "is_reply": event["reply_parent_message_id"] is not None,
    }


def epoch_ms(text: str) -> int | None:
    """A contract timestamp (``2026-01-01T00:00:00.000Z``) as epoch milliseconds; None if it names no instant.

    Returned by the UDF so the JVM need not parse the record again for it after the UDF: the pandas UDF answers a
    batch later, when the JVM's one-parse-per-record cache has moved on (a second parse measured ~5 % of the job).
    """
    try:
        return (datetime.fromisoformat(text) - _EPOCH) // _MILLISECOND
    except ValueError:
        return None


@lru_cache(maxsize=1)
def default_scorer() -> Scorer:
    return Scorer(Lexicon.load())


def parse_batch(raw: "pd.Series", max_chars: "int | pd.Series", scorer: Scorer | None = None) -> "pd.DataFrame":
    """The vectorized UDF's body: a batch of raw records -> one result row each (columns of RESULT_FIELDS).

    ``max_chars`` is a literal in the SQL, which PyFlink passes as a scalar, not as a Series.
    """
    import pandas as pd

    scorer = scorer or default_scorer()
    limit = int(max_chars.iloc[0]) if isinstance(max_chars, pd.Series) else int(max_chars)
    rows = [parse_record(value, limit, scorer) for value in raw]
    # Column by column: integer and boolean columns with missing values stay Python objects (None), which
    # PyFlink's Arrow conversion accepts; pandas would make them floats, or nullable extension types it rejects.
    return pd.DataFrame({
        name: pd.Series([row[name] for row in rows], dtype=object if sql_type in ("INT", "BIGINT", "BOOLEAN") else None)
        for name, sql_type in RESULT_FIELDS
    })


def parse_chat_udf():
    """The PyFlink vectorized UDF ``parse_chat(raw BYTES, max_chars INT) -> ROW<RESULT_FIELDS>``."""
    from pyflink.table import DataTypes
    from pyflink.table.udf import udf

    types = {"STRING": DataTypes.STRING(), "INT": DataTypes.INT(), "BIGINT": DataTypes.BIGINT(), "DOUBLE": DataTypes.DOUBLE(), "BOOLEAN": DataTypes.BOOLEAN()}
    result = DataTypes.ROW([DataTypes.FIELD(name, types[sql_type]) for name, sql_type in RESULT_FIELDS])
    return udf(parse_batch, result_type=result, func_type="pandas")
