"""The chat UDF logic on plain pandas Series: contract check, emotes, engagement and Twitch-aware sentiment.

The same functions run inside Flink's Python workers (tests/integration/test_chat_pipeline.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from flink_jobs.chat_udfs import (
    HEARTBEAT,
    PARSE_ERROR,
    RESULT_FIELDS,
    SCHEMA_ERROR,
    STATUS_OK,
    Lexicon,
    Scorer,
    char_entropy,
    default_scorer,
    emote_stats,
    epoch_ms,
    parse_batch,
    parse_record,
    sentiment_label,
)

MAX_CHARS = 65536


def message(**overrides) -> dict:
    base = {"message_id": "m1", "channel": "alpha", "channel_id": "1", "chatter_id": "c1", "chatter_login": "bob", "chatter_name": "Bob",
            "text": "hello", "emotes": [], "badges": [{"set_id": "subscriber", "id": "12"}], "reply_parent_message_id": None, "mentions": [],
            "sent_at": "2026-11-21T10:00:00.000Z", "data_retrieved_at": "2026-11-21T10:00:00.100Z"}
    return {**base, **overrides}


def parse(value: dict | bytes) -> dict:
    raw = value if isinstance(value, bytes) else json.dumps(value, ensure_ascii=False).encode()
    return parse_record(raw, MAX_CHARS, default_scorer())


@pytest.mark.parametrize("text, sign", [
    ("PogChamp what a play", 1), ("W streamer", 1), ("KEKW", 1), ("GG", 1), ("o7", 1), ("+2", 1), ("pokiHype pokiHype", 1),
    ("this is so sad Sadge", -1), ("L", -1), ("-2", -1), ("xqcL", -1), ("PepeHands", -1), ("monkaS this boss", -1), ("Copium", -1),
    ("first time here", 0), ("Kappa", 0), ("what rank is this?", 0),
])
def test_sentiment_signs_of_labelled_lines(text, sign):
    score = default_scorer().score(text, "alpha")
    assert -1.0 <= score <= 1.0
    assert {1: "positive", -1: "negative", 0: "neutral"}[sign] == sentiment_label(score), (text, score)


def test_emotes_are_lowercased_so_caps_do_not_read_as_shouting():
    scorer = default_scorer()
    assert scorer.score("nice one LUL", "alpha") == scorer.score("nice one lul", "alpha")


def test_channel_entries_override_global_ones(tmp_path: Path):
    path = tmp_path / "lexicon.tsv"
    path.write_text("# comment\nKEKW\t1.8\temote\nKEKW\t-3.0\temote\tgloomy\nzzzBoo\t-2.0\temote\tgloomy\nBoo\t-2\tsuffix\n", encoding="utf-8")
    scorer = Scorer(Lexicon.load(path))
    assert scorer.score("KEKW", "alpha") > 0 > scorer.score("KEKW", "gloomy")
    assert scorer.is_lexicon_emote("zzzBoo", "gloomy") and scorer.score("abcBoo", "alpha") < 0


@pytest.mark.parametrize("line, error", [("KEKW\tlots\temote", "not a number"), ("KEKW\t9\temote", "outside VADER's scale"), ("KEKW\t1\tword", "expected")])
def test_bad_lexicon_lines_name_the_line(tmp_path: Path, line, error):
    path = tmp_path / "lexicon.tsv"
    path.write_text(f"PogChamp\t2\temote\n{line}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"lexicon.tsv:2: .*{error}"):
        Lexicon.load(path)


def test_shipped_lexicon_loads_with_all_kinds():
    lexicon = Lexicon.load()
    assert {"pogchamp", "kekw", "w", "+2", "o7"} <= set(lexicon.words())
    assert {"Hype", "Love", "W", "L", "LUL"} <= set(lexicon.suffixes())


def test_emote_counts_from_positions_and_lexicon():
    scorer = default_scorer()
    is_emote = lambda token: scorer.is_lexicon_emote(token, "alpha")  # noqa: E731
    # "Kappa Kappa hi": two Twitch emotes out of three tokens
    stats = emote_stats("Kappa Kappa hi", [{"id": "25", "name": "Kappa", "begin": 0, "end": 4}, {"id": "25", "name": "Kappa", "begin": 6, "end": 10}], is_emote)
    assert (stats.count, stats.ratio, stats.emote_only, stats.names) == (2, 2 / 3, False, ("Kappa", "Kappa"))
    # emoji before the emote: positions are code points, not UTF-16 units or bytes
    stats = emote_stats("🔥🔥 LUL", [{"id": "425618", "name": "LUL", "begin": 3, "end": 5}], is_emote)
    assert (stats.count, stats.names) == (1, ("LUL",))
    # no positions: the lexicon's emotes (7TV/BTTV KEKW, a channel emote) count; slang (W) does not
    stats = emote_stats("KEKW pokiHype", [], is_emote)
    assert (stats.count, stats.emote_only, stats.names) == (2, True, ("KEKW", "pokiHype"))
    assert emote_stats("W", [], is_emote).count == 0
    assert emote_stats("", [], is_emote) == emote_stats("", [], is_emote) and emote_stats("", [], is_emote).ratio == 0.0


def test_entropy_in_bits_per_character():
    assert char_entropy("") == 0.0 and char_entropy("aaaa") == 0.0
    assert char_entropy("ab") == pytest.approx(1.0) and char_entropy("abcd") == pytest.approx(2.0)
    assert char_entropy("WWWWWWWWWWWW") < char_entropy("what a play that was")


def test_valid_message_features():
    row = parse(message(text="@carol is this the new patch? PogChamp", mentions=["carol"], reply_parent_message_id="m0",
                        emotes=[{"id": "305954156", "name": "PogChamp", "begin": 30, "end": 37}]))
    assert row["parse_status"] == STATUS_OK and row["parse_error"] is None
    assert (row["is_question"], row["is_mention"], row["is_reply"]) == (True, True, True)
    assert (row["emote_count"], row["emote_names"], row["is_emote_only"], row["message_length"]) == (1, "PogChamp", False, 38)
    assert row["badges"] == "subscriber/12" and row["mentions"] == "carol" and row["sentiment"] > 0
    assert row["data_retrieved_ms"] == 1_795_255_200_100  # 2026-11-21T10:00:00.100Z


def test_a_timestamp_of_the_contracts_form_on_no_real_day_gives_none():
    # the contract's pattern admits it; silver then has no data_retrieved_at rather than a wrong one
    assert epoch_ms("2026-02-30T00:00:00.000Z") is None and epoch_ms("1970-01-01T00:00:00.001Z") == 1


@pytest.mark.parametrize("raw, status, error", [
    (b'{"message_id": "broken', PARSE_ERROR, "invalid JSON"),
    (json.dumps(message()).encode().replace(b"hello", b"he\xff\xfelo"), PARSE_ERROR, "invalid UTF-8"),
    (json.dumps(message(text="x" * (MAX_CHARS + 1))).encode(), PARSE_ERROR, "oversized"),
    (json.dumps(message(emotes="Kappa")).encode(), SCHEMA_ERROR, "emotes"),
    (json.dumps({k: v for k, v in message().items() if k != "channel"}).encode(), SCHEMA_ERROR, "channel"),
    (json.dumps(message(text="x" * 501)).encode(), SCHEMA_ERROR, "text"),
    (json.dumps(message(text="hi", emotes=[{"id": "25", "name": "Kappa", "begin": 0, "end": 4}])).encode(), SCHEMA_ERROR, "outside the text"),
    (b"[1, 2]", SCHEMA_ERROR, "object"),
    (b"", PARSE_ERROR, "invalid JSON"),
    (None, PARSE_ERROR, "empty record"),
])
def test_malformed_records_get_a_status_and_a_reason(raw, status, error):
    row = parse_record(raw, MAX_CHARS, default_scorer())
    assert row["parse_status"] == status and error in row["parse_error"], row["parse_error"]
    assert row["message_id"] is None and row["sentiment"] is None


def test_hostile_but_valid_text_passes():
    for text in ("مرحبا بالجميع 👋", "👨‍👩‍👧 family", "'; DROP TABLE chat_silver; --", "<script>alert(1)</script>", "\u200b\u200d"):
        row = parse(message(text=text))
        assert row["parse_status"] == STATUS_OK and row["text"] == text and -1 <= row["sentiment"] <= 1


def test_heartbeats_are_recognised():
    assert parse(b'{"heartbeat":true,"data_retrieved_at":"2026-11-21T10:00:00.000Z"}')["parse_status"] == HEARTBEAT


def test_batch_is_one_frame_with_the_declared_columns():
    raw = pd.Series([json.dumps(message()).encode(), b"nope", None])
    frame = parse_batch(raw, MAX_CHARS)
    assert list(frame.columns) == [name for name, _ in RESULT_FIELDS] and len(frame) == 3
    assert list(frame["parse_status"]) == [STATUS_OK, PARSE_ERROR, PARSE_ERROR]
    assert list(frame["emote_count"]) == [0, None, None] and list(frame["is_question"]) == [False, None, None]
    assert list(frame["data_retrieved_ms"]) == [1_795_255_200_100, None, None]
