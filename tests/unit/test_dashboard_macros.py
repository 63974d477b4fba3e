"""Macro, variable and interval expansion against the ClickHouse plugin's and Grafana's documented examples.

The plugin documents its macros for a panel range of 2014-11-12T11:45:26.371Z to 2015-11-12T11:45:26.371Z
and an interval of 20 s; Grafana's interval is roundInterval((to - from) / maxDataPoints).
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from twitch_pipeline.dashboards.macros import (
    ALL,
    MacroError,
    QueryContext,
    expand,
    format_interval,
    panel_interval_ms,
    parse_duration_ms,
    round_interval,
    unknown_variables,
)

FROM_MS = int(datetime(2014, 11, 12, 11, 45, 26, 371000, tzinfo=timezone.utc).timestamp() * 1000)
TO_MS = int(datetime(2015, 11, 12, 11, 45, 26, 371000, tzinfo=timezone.utc).timestamp() * 1000)
DOC = QueryContext(FROM_MS, TO_MS, interval_ms=20_000)


@pytest.mark.parametrize(("sql", "expected"), [
    ("$__timeFilter(time)", "time >= toDateTime(1415792726) AND time <= toDateTime(1447328726)"),
    ("SELECT log_time, log_message FROM logs WHERE $__timeFilter(log_time)",
     "SELECT log_time, log_message FROM logs WHERE log_time >= toDateTime(1415792726) AND log_time <= toDateTime(1447328726)"),
    ("$__fromTime", "toDateTime(1415792726)"),
    ("$__toTime", "toDateTime(1447328726)"),
    ("$__interval_s", "20"),
    ("$__timeInterval(column)", "toStartOfInterval(toDateTime(column), INTERVAL 20 second)"),
    ("$__from $__to $__interval $__interval_ms", f"{FROM_MS} {TO_MS} 20s 20000"),
])
def test_plugin_documented_examples(sql, expected):
    assert expand(sql, DOC) == expected


def test_nested_arguments_and_repeated_macros():
    sql = "SELECT $__timeInterval(coalesce(a, b)) AS t FROM x WHERE $__timeFilter(a) AND $__timeFilter(b)"
    assert expand(sql, DOC) == (
        "SELECT toStartOfInterval(toDateTime(coalesce(a, b)), INTERVAL 20 second) AS t FROM x WHERE "
        "a >= toDateTime(1415792726) AND a <= toDateTime(1447328726) AND b >= toDateTime(1415792726) AND b <= toDateTime(1447328726)"
    )


COND = "$__conditionalAll(game_name IN (${game:singlequote}), $game)"


@pytest.mark.parametrize(("selected", "expected"), [
    ([ALL], "1=1"),
    ([], "1=1"),
    (["Chess"], "game_name IN ('Chess')"),
    (["Chess", "Just Chatting"], "game_name IN ('Chess','Just Chatting')"),
    # a quote or a trailing backslash in a value (game names are user content) stays inside its literal
    (["O'Brien\\"], "game_name IN ('O\\'Brien\\\\')"),
])
def test_conditional_all_before_variables(selected, expected):
    ctx = QueryContext(FROM_MS, TO_MS, 20_000, {"game": selected}, {"game": ["Chess", "Just Chatting"]})
    assert expand(COND, ctx, {"game": True}) == expected


def test_variable_formats_and_all_outside_conditional_all():
    ctx = QueryContext(FROM_MS, TO_MS, 20_000, {"game": [ALL], "lang": ["en"]}, {"game": ["a", "b"]})
    assert expand("${game:singlequote} | ${game:csv} | $lang | ${lang}", ctx) == "'a','b' | a,b | en | en"


@pytest.mark.parametrize("sql", ["$__timeFilter_ms(t)", "$__dateFilter(d)", "$__timeInterval_ms(t)", "$__unknown"])
def test_macros_outside_the_stable_set_are_refused(sql):
    with pytest.raises(MacroError, match="stable"):
        expand(sql, DOC)


def test_bad_macro_arguments_are_clear_errors():
    with pytest.raises(MacroError, match="exactly one column"):
        expand("$__timeFilter(a, b)", DOC)
    with pytest.raises(MacroError, match="unbalanced"):
        expand("$__timeFilter(a", DOC)


@pytest.mark.parametrize(("ms", "rounded"), [
    (5, 1), (12, 10), (30, 20), (100, 100), (1200, 1000), (3000, 2000), (3600, 5000), (10_000, 10_000), (16_000, 15_000),
    (40_000, 30_000), (60_000, 60_000), (200_000, 120_000), (400_000, 300_000), (3_000_000, 3_600_000),
    (80_000_000, 43_200_000), (500_000_000, 86_400_000), (10**12, 31_536_000_000),
])
def test_round_interval_is_grafanas_ladder(ms, rounded):
    assert round_interval(ms) == rounded


def test_panel_interval_from_range_width_and_min_interval():
    hour = 3_600_000
    assert panel_interval_ms(0, hour, 1000) == 5000  # 3.6 s per point rounds to 5 s
    assert panel_interval_ms(0, hour, 1000, "1m") == 60_000  # raised to the panel's minimum interval
    assert panel_interval_ms(0, 24 * hour, 1000, "1m") == 60_000  # 86.4 s rounds to 1 m
    assert panel_interval_ms(0, 7 * 24 * hour, 800) == 900_000  # 756 s rounds to 15 m
    tiny = QueryContext(0, 10_000, panel_interval_ms(0, 10_000, 1000))
    assert tiny.interval_s == 1  # whole seconds, at least 1


def test_durations():
    assert [parse_duration_ms(t) for t in ("1m", "30s", "10", ">2h", "1d")] == [60_000, 30_000, 10_000, 7_200_000, 86_400_000]
    assert [format_interval(ms) for ms in (20_000, 60_000, 90_000, 3_600_000, 500)] == ["20s", "1m", "90s", "1h", "500ms"]
    with pytest.raises(MacroError):
        parse_duration_ms("soon")


def test_unknown_variables():
    assert unknown_variables("WHERE a = $game AND b = ${lang:csv} AND $__timeFilter(t) AND $__from", {"game"}) == {"lang"}
