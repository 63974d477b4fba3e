"""JSON → typed rows: exact conversion, and a clear reason for every record that does not fit."""

from __future__ import annotations

import dataclasses

import pytest

from connectors.sink.mapping import MAPPINGS, selected_mappings
from connectors.sink.rows import Column, Rejected, RowConverter
from twitch_pipeline.errors import ConfigurationError, PlatformError
from twitch_pipeline.settings import load_settings

COLUMNS = [
    Column("id", "String"),
    Column("viewers", "Nullable(UInt32)"),
    Column("avg", "Float64"),
    Column("mature", "Nullable(Bool)"),
    Column("lang", "LowCardinality(String)"),
    Column("at", "DateTime64(3, 'UTC')"),
    Column("seen", "Nullable(DateTime64(6, 'UTC'))"),
]
GOOD = b'{"id":"a","viewers":7,"avg":1,"mature":false,"lang":"en","at":"2026-11-21T11:05:00.123Z","seen":null}'


def converter() -> RowConverter:
    return RowConverter("t", COLUMNS, "at")


def test_a_fitting_record_becomes_a_row_in_column_order():
    assert converter().convert(GOOD) == ("a", 7, 1.0, False, "en", 1795259100123, None)


def test_timestamps_become_ticks_at_the_column_precision_in_utc():
    row = converter().convert(GOOD.replace(b'"seen":null', b'"seen":"2026-11-21T12:05:00.000001+01:00"'))
    assert row[-1] == 1795259100000001
    assert converter().event_ticks_per_second == 1000


def test_missing_nullable_columns_are_null():
    assert converter().convert(b'{"id":"a","avg":1.5,"lang":"en","at":"2026-11-21T11:05:00Z"}')[1] is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{not json", "invalid JSON"),
        (b"[1, 2]", "not an object"),
        (None, "no value"),
        (GOOD.replace(b'"id":"a"', b'"id":"a","extra":1'), "unknown column(s) extra"),
        (GOOD.replace(b'"viewers":7', b'"viewers":"7"'), "column viewers (Nullable(UInt32)): expected an integer"),
        (GOOD.replace(b'"viewers":7', b'"viewers":-1'), "out of range"),
        (GOOD.replace(b'"mature":false', b'"mature":1'), "expected true or false"),
        (GOOD.replace(b'"avg":1', b'"avg":true'), "expected a number"),
        (GOOD.replace(b'"at":"2026-11-21T11:05:00.123Z"', b'"at":"yesterday"'), "not an ISO-8601 timestamp"),
        (GOOD.replace(b'"at":"2026-11-21T11:05:00.123Z"', b'"at":null'), "column at (DateTime64(3, 'UTC')) is null but not Nullable"),
        (GOOD.replace(b'"id":"a",', b""), "column id (String) is missing"),
    ],
)
def test_a_record_that_does_not_fit_is_rejected_with_the_reason(value, reason):
    with pytest.raises(Rejected) as err:
        converter().convert(value)
    assert reason in str(err.value)


def test_a_column_type_the_sink_cannot_fill_is_a_clear_error():
    with pytest.raises(PlatformError, match="Map\\(String, String\\)"):
        RowConverter("t", [Column("m", "Map(String, String)")])


def test_sink_topics_selects_mappings_and_rejects_unknown_names():
    base = load_settings(environ={}, dotenv=None)
    assert selected_mappings(base) == MAPPINGS
    chosen = selected_mappings(dataclasses.replace(base, sink_topics="late_events, top_streams"))
    assert [m.topic for m in chosen] == ["late_events", "top_streams"]
    with pytest.raises(ConfigurationError, match="unmapped topics nope"):
        selected_mappings(dataclasses.replace(base, sink_topics="nope"))
