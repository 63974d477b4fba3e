"""The pure parts of the end-to-end benchmark: percentiles, trends, the rate search, and the report it renders."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from benchmarks import _e2e_report, _e2e_stats


def test_weighted_percentiles_are_nearest_rank_over_the_weights():
    # 100 values 1..100, each once: the classic nearest-rank percentiles
    assert _e2e_stats.weighted_percentiles([(v, 1) for v in range(100, 0, -1)]) == {0.5: 50, 0.95: 95, 0.99: 99}
    # a value seen 98 times dominates; the two slow ones make the tail
    assert _e2e_stats.weighted_percentiles([(1.0, 98), (7.0, 1), (9.0, 1)]) == {0.5: 1.0, 0.95: 1.0, 0.99: 7.0}
    assert _e2e_stats.weighted_percentiles([(3.0, 0)]) == {}
    assert _e2e_stats.weighted_percentiles([]) == {}


def test_slope_and_freshness_trend():
    assert _e2e_stats.slope([(0, 1), (1, 3), (2, 5)]) == pytest.approx(2.0)
    assert _e2e_stats.slope([(5, 1)]) == 0.0
    assert _e2e_stats.slope([(1, 1), (1, 2)]) == 0.0
    # rows of event time t visible at t + 2 s throughout: flat; visible ever later: growing half a second per second
    steady = [(t + 2.0, t, 10) for t in range(60)]
    falling_behind = [(t + 2.0 + 0.5 * t, t, 10) for t in range(60)]
    assert _e2e_stats.slope(_e2e_stats.freshness_trend(steady)) == pytest.approx(0.0)
    assert _e2e_stats.slope(_e2e_stats.freshness_trend(falling_behind)) == pytest.approx(0.5)
    # one slow straggler within a second does not move that second's median
    assert _e2e_stats.freshness_trend([(2.0, 0.1, 50), (9.0, 0.2, 1)]) == [(0.0, pytest.approx(1.9))]


def test_lag_floor_ignores_the_checkpoint_saw_tooth_and_keeps_a_real_trend():
    # one sample a second over 40 s; a group's lag climbs 8,000 records/s until a checkpoint commits, every 3 s,
    # but the window ends in a slow one (4.5 s)
    commits = [*(3.0 * i for i in range(12)), 37.5]

    def saw(t: float) -> int:
        return int(8_000 * (t - max(c for c in commits if c <= t)))

    times = [float(t) for t in range(40)]
    steady = [(t, {"job": saw(t), "sink": 50}) for t in times]
    behind = [(t, {"job": saw(t) + 600 * int(t), "sink": 50}) for t in times]
    assert _e2e_stats.slope([(t, sum(r.values())) for t, r in steady]) > 150  # what it does to the slope of every sample
    assert _e2e_stats.slope(_e2e_stats.lag_floor(steady, 8.0)) == pytest.approx(0.0)
    assert _e2e_stats.slope(_e2e_stats.lag_floor(behind, 8.0)) == pytest.approx(600, rel=0.15)
    # the low point per block and group, summed; a group with no commit yet is left out of its block
    assert _e2e_stats.lag_floor([(0.0, {"a": 5, "b": None}), (2.0, {"a": 3, "b": 7}), (9.0, {"a": 4, "b": 1})], 8.0) == [(4.0, 10.0), (12.0, 5.0)]


def test_verdict_names_every_reason():
    assert _e2e_stats.verdict(1000, 980, 0.0, 3.0, True).held
    failed = _e2e_stats.verdict(1000, 700, 0.4, 500.0, False)
    assert not failed.held
    assert [r.split()[0] for r in failed.reasons] == ["producer", "freshness", "consumer", "not"]


def test_rate_search_doubles_then_bisects():
    nxt = _e2e_stats.next_rate
    assert nxt([], 1000, 2, 6) == 1000
    assert nxt([(1000, True)], 1000, 2, 6) == 2000
    assert nxt([(1000, True), (2000, True), (4000, False)], 1000, 2, 6) == pytest.approx(2828.4, abs=0.1)
    # within the resolution: done
    assert nxt([(1000, True), (2000, True), (4000, False), (2828, True), (3364, False)], 1000, 2, 9, resolution=1.3) is None
    # a failure below the best held rate (a noisy step) does not stop the climb
    assert nxt([(1000, True), (2000, True), (1500, False)], 1000, 2, 6) == 4000
    # the first step already fails: go down
    assert nxt([(1000, False)], 1000, 2, 6) == 500
    assert nxt([(1000, True)], 1000, 2, 1) is None


def _result() -> dict:
    step = {"target_events_per_s": 1000, "achieved_events_per_s": 990, "held": True, "why_not_held": [],
            "stage_events_per_s": {"producer → Kafka": 990, "ClickHouse game_streams_enriched": 880},
            "freshness_ms": {"p50": 2100, "p95": 3900, "p99": 4800}, "producer_delay_ms": {"p50": 410, "p95": 800, "p99": 930}, "freshness_slope_s_per_s": 0.01, "consumer_lag_slope_per_s": 2,
            "drain_s_after_source_stopped": 4.2, "cpu_s": {"kafka": 5.0}, "cores_used": {"kafka": 0.12},
            "late_events": {"late": {"rows": 1203, "first_copy_visible": 1200, "without_first_copy": []}, "late_for_window": {"rows": 3}},
            "load_average_1_5_15_at_start": [9.5, 8.0, 7.1], "load_average_1_5_15_at_end": [10.2, 8.4, 7.3]}
    behind = step | {"late_events": {}, "target_events_per_s": 2000, "achieved_events_per_s": 1990, "held": False, "why_not_held": ["freshness grew 0.40 s per s"],
                     "freshness_ms": {"p50": 30000, "p95": 52000, "p99": 61000}}
    glassflow = {"records": 20000, "unique": 18000, "duplicates": 2000, "publishers": 1, "source_events_per_s": 12000,
                 "pipeline_events_per_s": 3000, "pipeline_unique_per_s": 2700, "lag_s": 4.5, "found_in_clickhouse": 18000,
                 "exactly_unique_total": True, "late_events": 0, "freshness_ms": {"p50": 2000, "p95": 3000, "p99": 3500},
                 "load_average_1_5_15_at_start": [10.0, 9.0, 8.0], "load_average_1_5_15_at_end": [11.0, 9.0, 8.0]}
    return {"end_to_end_events_per_s": 990, "end_to_end_unique_rows_per_s": 880, "freshness_ms": step["freshness_ms"],
            "freshness_measured": "polled", "peak_rss_mb": {"kafka": 600}, "rates": [step, behind], "glassflow_shaped": glassflow,
            "glassflow_published": _e2e_report.GLASSFLOW_PUBLISHED, "iceberg_rows_total": 12345, "job_submission_s": 80.0,
            "machine": {"cores": 2, "memory_gb": 24.0, "started_at": "2026-11-29T12:00:00+00:00", "finished_at": "2026-11-29T12:10:00+00:00",
                        "load_average_1_5_15_at_start": [9.5, 8.0, 7.1], "load_average_1_5_15_at_end": [10.2, 8.4, 7.3]},
            "settings": {"checkpoint_interval_s": 1.0, "jobs": ["enrich_streams", "aggregate_streams"]}, "logs": {"error_lines": 0}}


def test_svg_chart_is_well_formed_and_marks_held_and_failed_steps():
    svg = _e2e_report.render_svg(_result()["rates"])
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    circles = root.findall(f"{ns}circle")
    assert len([c for c in circles if c.get("fill") == "white"]) >= 3  # the failed step's three percentiles (+ legend)
    assert len(root.findall(f"{ns}polyline")) == 3
    assert "log scale" in svg  # 2.1 s to 61 s spans more than a factor of 10
    assert ET.fromstring(_e2e_report.render_svg([])) is not None


def test_markdown_report_carries_the_numbers_the_load_and_the_glassflow_citation(tmp_path):
    result = _result()
    text = _e2e_report.render_markdown(result)
    for expected in ("**990**", "2,100 / 3,900 / 4,800", "9.5 / 8 / 7.1", "freshness grew 0.40 s per s",
                     "https://docs.glassflow.dev/load-test/results", "8,547", "**this pipeline**", "![Rate against freshness](bench.svg)",
                     "| 1,203 late (1,200 copies, **3 without a first copy**), 3 late_for_window |", "| 410 / 930 |", "| 0 |",
                     "| Highest step held at freshness p99 ≤ 5 s, events/s produced | **990** (1,000/s target; p99 4,800 ms) |"):
        assert expected in text, expected
    assert _e2e_report._within_target({"rates": result["rates"][1:]}) == "none"  # failed, and p99 61 s
    _e2e_report.write(result, tmp_path)
    assert json.loads((tmp_path / "bench.json").read_text())["freshness_ms"]["p99"] == 4800
    assert {p.name for p in tmp_path.iterdir()} == {"bench.json", "bench.md", "bench.svg"}


def test_events_per_cpu_second_leaves_the_benchmark_out():
    cpu = {"kafka": 2.0, "flink_taskmanager": 6.0, "benchmark": 30.0}
    assert _e2e_stats.events_per_cpu_s(8000, cpu) == 1000
    assert _e2e_stats.events_per_cpu_s(8000, {"benchmark": 3.0}) is None
