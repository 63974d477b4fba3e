"""reports/bench.{json,md,svg} from the end-to-end benchmark's result (benchmarks/e2e.py): plain text, no plotting library."""

from __future__ import annotations

import json
import math
from html import escape
from pathlib import Path
from typing import Any

from benchmarks import _e2e_stats

#: Issue 15's target: a stream snapshot visible in ClickHouse within 5 s of its event time, at p99.
FRESHNESS_TARGET_MS = 5_000

#: The published GlassFlow Kafka → ClickHouse load test, for the side-by-side table (figures as published).
GLASSFLOW_PUBLISHED: dict[str, Any] = {
    "source": "https://docs.glassflow.dev/load-test/results",
    "setup": "https://docs.glassflow.dev/load-test/setup",
    "blog": "https://www.glassflow.dev/blog/load-test-glass-flow-for-click-house-real-time-deduplication-at-scale",
    "code": "https://github.com/glassflow/clickhouse-etl-loadtest",
    "last_updated": "2025-05-22",
    "machine": "MacBook Pro, Apple M2 Max, 12 cores (8 performance, 4 efficiency), 32 GB; Kafka, ClickHouse and GlassFlow in Docker",
    "record": '{"event_id": uuid4, "user_id": uuid4, "name", "email", "created_at"}',
    "pipeline": "deduplication on event_id (8 h window), no joins; sink batches of at most 5,000 rows or 10 s",
    "duplication_rate": 0.1,
    "lag_definition": "from the last event sent to Kafka until it is available in ClickHouse",
    # (variant, records in millions, Kafka publishers, source records/s, GlassFlow records/s, average latency ms, lag s)
    "runs": [
        ("load_9fb6b2c9", 5.0, 2, 8705, 8547, 0.117, 10.1),
        ("load_0b8b8a70", 10.0, 2, 8773, 8653, 0.1156, 15.04),
        ("load_a7e0c0df", 15.0, 2, 8804, 8748, 0.1143, 10.04),
        ("load_bd0fdf39", 20.0, 2, 8737, 8556, 0.1169, 47.74),
        ("load_1542aa3b", 5.0, 4, 17679, 9189, 0.1088, 260.55),
        ("load_a85a4c42", 10.0, 4, 17738, 9429, 0.1061, 495.97),
        ("load_5efd111b", 15.0, 4, 17679, 9341, 0.1071, 756.49),
        ("load_23da167d", 20.0, 4, 17534, 9377, 0.1066, 991.77),
    ],
}


# ------------------------------------------------------------------------------------------- chart
TARGET_P99_S = 5.0  # issue 15: a stream snapshot visible in ClickHouse within 5 s at p99
def render_svg(steps: list[dict[str, Any]], width: int = 720, height: int = 420) -> str:
    """Rate (achieved events/s) against freshness p50/p95/p99; a held step is a filled dot, a failed one hollow.

    The freshness axis is logarithmic when the values span more than a factor of 10 (a step that fell
    behind would otherwise flatten the others).
    """
    left, right, top, bottom = 70, 150, 40, 50
    plot_w, plot_h = width - left - right, height - top - bottom
    series = {"p50": "#1f77b4", "p95": "#ff7f0e", "p99": "#d62728"}
    points = sorted((s for s in steps if s.get("freshness_ms")), key=lambda s: s["achieved_events_per_s"])
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           'font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="22" font-size="14" font-weight="bold">Rate vs freshness (produced → visible in ClickHouse)</text>']
    if not points:
        out.append(f'<text x="{left}" y="{top + plot_h / 2}">no step produced freshness figures</text></svg>')
        return "\n".join(out) + "\n"
    x_max = _nice(max(s["achieved_events_per_s"] for s in points) * 1.1)
    values = [s["freshness_ms"][k] / 1000 for s in points for k in series if k in s["freshness_ms"]]
    low, high = max(min(values), 0.01), max(values)
    log = high / low > 10
    if log:
        y_lo, y_hi = 10 ** math.floor(math.log10(low)), 10 ** math.ceil(math.log10(high))
        ticks = [y_lo * 10**i for i in range(round(math.log10(y_hi / y_lo)) + 1)]

        def y_of(v: float) -> float:
            return top + plot_h * (1 - (math.log10(max(v, y_lo)) - math.log10(y_lo)) / (math.log10(y_hi) - math.log10(y_lo)))
    else:
        y_lo, y_hi = 0.0, _nice(high * 1.1)
        ticks = [y_hi * i / 5 for i in range(6)]

        def y_of(v: float) -> float:
            return top + plot_h * (1 - v / y_hi)

    def x_of(v: float) -> float:
        return left + plot_w * v / x_max

    out.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="black"/>')
    out.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="black"/>')
    for i in range(6):
        v = x_max * i / 5
        out.append(f'<line x1="{x_of(v):.1f}" y1="{top + plot_h}" x2="{x_of(v):.1f}" y2="{top + plot_h + 5}" stroke="black"/>')
        out.append(f'<text x="{x_of(v):.1f}" y="{top + plot_h + 18}" text-anchor="middle">{v:,.0f}</text>')
    for v in ticks:
        out.append(f'<line x1="{left}" y1="{y_of(v):.1f}" x2="{left + plot_w}" y2="{y_of(v):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y_of(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
    if y_lo <= TARGET_P99_S <= ticks[-1]:
        y = y_of(TARGET_P99_S)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#2ca02c" stroke-dasharray="6 4"/>')
        out.append(f'<text x="{left + plot_w - 4}" y="{y - 5:.1f}" text-anchor="end" fill="#2ca02c">p99 target {TARGET_P99_S:g} s</text>')
    out.append(f'<text x="{left + plot_w / 2}" y="{height - 10}" text-anchor="middle">events/s produced (10 % duplicates)</text>')
    out.append(f'<text x="18" y="{top + plot_h / 2}" text-anchor="middle" transform="rotate(-90 18 {top + plot_h / 2})">'
               f'freshness, s{" (log scale)" if log else ""}</text>')
    for row, (name, colour) in enumerate(series.items()):
        coords = [(x_of(s["achieved_events_per_s"]), y_of(s["freshness_ms"][name] / 1000), s["held"]) for s in points if name in s["freshness_ms"]]
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(f"{x:.1f},{y:.1f}" for x, y, _ in coords)}"/>')
        for x, y, held in coords:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" stroke="{colour}" stroke-width="2" fill="{colour if held else "white"}"/>')
        ly = top + 10 + row * 18
        out.append(f'<line x1="{left + plot_w + 15}" y1="{ly}" x2="{left + plot_w + 35}" y2="{ly}" stroke="{colour}" stroke-width="2"/>')
        out.append(f'<text x="{left + plot_w + 40}" y="{ly + 4}">{name}</text>')
    ly = top + 10 + len(series) * 18 + 6
    out.append(f'<circle cx="{left + plot_w + 25}" cy="{ly}" r="4" fill="black"/><text x="{left + plot_w + 40}" y="{ly + 4}">held</text>')
    out.append(f'<circle cx="{left + plot_w + 25}" cy="{ly + 18}" r="4" fill="white" stroke="black"/>'
               f'<text x="{left + plot_w + 40}" y="{ly + 22}">fell behind</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _nice(value: float) -> float:
    """The next 1, 2 or 5 times a power of ten at or above ``value`` (axis ends)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= value)


# ------------------------------------------------------------------------------------------- markdown
def _within_target(result: dict[str, Any]) -> str:
    """The highest step held whose p99 freshness meets the target: the rate a deployment can plan for. The highest step
    held alone can land anywhere up to saturation, where rows queue behind each other for seconds (session 14)."""
    best = _e2e_stats.highest_held(result["rates"], FRESHNESS_TARGET_MS)
    if best is None:
        return "none"
    return f"**{_n(best['achieved_events_per_s'])}** ({_n(best['target_events_per_s'])}/s target; p99 {_n(best['freshness_ms']['p99'])} ms)"


def _at_best(result: dict[str, Any], key: str) -> Any:
    """``key`` of the step the headline figures come from (the one whose rate they report)."""
    return next((s.get(key) for s in result["rates"] if s["achieved_events_per_s"] == result["end_to_end_events_per_s"]), None)


def _late(late: dict[str, dict[str, Any]] | None) -> str:
    """Rows classed late per reason; for the dedup stages, how many were copies whose first copy went through, and how
    many had none (the benchmark traces those in their input topic: ``without_first_copy`` in bench.json)."""
    if late is None:
        return "—"

    def copies(r: dict[str, Any]) -> str:
        if "first_copy_visible" not in r:
            return ""
        missing = r["rows"] - r["first_copy_visible"]
        return f" ({r['first_copy_visible']:,} copies" + (f", **{missing:,} without a first copy**" if missing else "") + ")"

    return ", ".join(f"{r['rows']:,} {reason}{copies(r)}" for reason, r in late.items()) or "0"


def _n(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, (int, float)) else escape(str(value))


def _cores(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _step_loads(result: dict[str, Any]) -> str:
    """The range of the 1-minute load average over the steps' starts and ends (the headline's own runs)."""
    loads = [s[k][0] for s in result["rates"] for k in ("load_average_1_5_15_at_start", "load_average_1_5_15_at_end") if s.get(k)]
    return f", **{min(loads):g}–{max(loads):g}** (1 min) at the rate steps' starts and ends" if loads else ""


def _load(values: list[float] | None) -> str:
    return " / ".join(f"{v:g}" for v in values) if values else "—"


def render_markdown(result: dict[str, Any], chart: str = "bench.svg") -> str:
    machine, settings = result["machine"], result["settings"]
    fresh = result.get("freshness_ms") or {}
    lines = [
        "# End-to-end benchmark",
        "",
        f"Run {machine['started_at']} → {machine['finished_at']} on {machine['cores']} cores, {machine['memory_gb']} GB; "
        f"load average (1/5/15 min) **{_load(machine['load_average_1_5_15_at_start'])}** at the start and "
        f"**{_load(machine['load_average_1_5_15_at_end'])}** at the end{_step_loads(result)}. The machine was shared: read every wall-clock "
        "figure with the load beside it. How it is measured: [docs/benchmarks.md](../docs/benchmarks.md). Raw figures: "
        "[bench.json](bench.json).",
        "",
        *([f"**Not at the default settings:** {', '.join(settings['changed_from_defaults'])}.", ""] if settings.get("changed_from_defaults") else []),
        "## Summary",
        "",
        "| Figure | Value |",
        "| --- | --- |",
        f"| End to end, events/s produced (10 % duplicates), at {result.get('end_to_end_basis', 'the highest step held')} | "
        f"**{_n(result['end_to_end_events_per_s'])}** |",
        f"| … of which unique snapshots visible in ClickHouse per s | {_n(result.get('end_to_end_unique_rows_per_s'))} |",
        f"| Steps held | {sum(1 for s in result['rates'] if s['held'])} of {len(result['rates'])} |",
        f"| Events per CPU-second of the whole pipeline at that rate (contention-robust) | {_n(_at_best(result, 'events_per_pipeline_cpu_s'))} |",
        f"| Freshness at that rate, produced → visible in ClickHouse, p50 / p95 / p99 | "
        f"**{_n(fresh.get('p50'))} / {_n(fresh.get('p95'))} / {_n(fresh.get('p99'))} ms** |",
        f"| Highest step held at freshness p99 ≤ {FRESHNESS_TARGET_MS / 1000:g} s, events/s produced | {_within_target(result)} |",
        f"| Freshness measured as | {result['freshness_measured']} |",
        f"| Rows in the Iceberg table lake.game_streams_enriched at the end | {_n(result.get('iceberg_rows_total'))} |",
        f"| Submitting the {len(settings['jobs'])} streaming jobs (`flink run` each) | {_n(result.get('job_submission_s'))} s |",
        "",
        f"![Rate against freshness]({chart})",
        "",
        "## Rate steps",
        "",
        "| Target /s | Produced /s | Held | Freshness p50 / p95 / p99 ms | … of it in the producer, p50 / p99 ms | Freshness trend s/s | Lag trend records/s | Drain s | Classed late | Events per pipeline CPU-s | Load at start → end | Why not held |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in result["rates"]:
        f, d = s["freshness_ms"], s.get("producer_delay_ms") or {}
        lines.append(f"| {_n(s['target_events_per_s'])} | {_n(s['achieved_events_per_s'])} | {'yes' if s['held'] else 'no'} | "
                     f"{_n(f.get('p50'))} / {_n(f.get('p95'))} / {_n(f.get('p99'))} | {_n(d.get('p50'))} / {_n(d.get('p99'))} | {s['freshness_slope_s_per_s']} | "
                     f"{_n(s['consumer_lag_slope_per_s'])} | {_n(s['drain_s_after_source_stopped'])} | {_late(s.get('late_events'))} | {_n(s.get('events_per_pipeline_cpu_s'))} | "
                     f"{_load(s['load_average_1_5_15_at_start'])} → {_load(s['load_average_1_5_15_at_end'])} | {'; '.join(s['why_not_held']) or ''} |")
    stages = list(result["rates"][0]["stage_events_per_s"]) if result["rates"] else []
    if stages:
        lines += ["", "### Events/s out of each stage (measured window)", "",
                  "| Stage | " + " | ".join(f"{_n(s['target_events_per_s'])}/s step" for s in result["rates"]) + " |",
                  "| --- | " + " | ".join("---" for _ in result["rates"]) + " |"]
        for stage in stages:
            lines.append(f"| {stage} | " + " | ".join(_n(s["stage_events_per_s"].get(stage)) for s in result["rates"]) + " |")
    components = sorted(set(result["peak_rss_mb"]) | {c for s in result["rates"] for c in s["cpu_s"]})
    lines += ["", "## CPU and memory per component", "",
              "CPU seconds over each step's measured window (cores used = CPU seconds / window), and the peak resident "
              "memory over the whole run (each component's process group, from /proc; `benchmark` is this benchmark's "
              "own process: the ClickHouse and Kafka watchers and the GlassFlow-shaped publisher).", "",
              "| Component | Peak RSS MB | " + " | ".join(f"cores used at {_n(s['target_events_per_s'])}/s" for s in result["rates"]) + " |",
              "| --- | --- | " + " | ".join("---" for _ in result["rates"]) + " |"]
    for c in components:
        lines.append(f"| {c} | {_n(result['peak_rss_mb'].get(c))} | " + " | ".join(_cores(s["cores_used"].get(c)) for s in result["rates"]) + " |")
    lines.append("| **the pipeline (all but benchmark)** | " + _n(sum(v for c, v in result["peak_rss_mb"].items() if c != "benchmark")) + " | "
                 + " | ".join(_cores(sum(v for c, v in s["cores_used"].items() if c != "benchmark")) for s in result["rates"]) + " |")
    lines += _glassflow_section(result.get("glassflow_shaped"), result["glassflow_published"])
    lines += ["", "## Settings", "", "| Setting | Value |", "| --- | --- |"]
    lines += [f"| {k} | {_n((', '.join(v) or 'none') if isinstance(v, list) else v)} |" for k, v in settings.items()]
    logs = result.get("logs") or {}
    if logs.get("error_lines"):
        lines += ["", f"ERROR lines in the platform's logs: {logs['error_lines']}; the first distinct ones:", ""]
        lines += [f"- `{m}`" for m in logs.get("first_distinct", [])]
    return "\n".join(lines) + "\n"


def _glassflow_section(ours: dict[str, Any] | None, published: dict[str, Any]) -> list[str]:
    lines = ["", "## Beside the published GlassFlow load test", "",
             f"GlassFlow published a Kafka → dedup → ClickHouse load test ([results]({published['source']}), last updated "
             f"{published['last_updated']}; [setup]({published['setup']}); [code]({published['code']})): records "
             f"`{published['record']}` with {published['duplication_rate']:.0%} duplicates, {published['pipeline']}, on a "
             f"{published['machine']}. Lag is {published['lag_definition']}.", "",
             "| Run | Records | Publishers | Into Kafka /s | Pipeline /s | Lag s | Machine |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for variant, millions, publishers, source, processed, _latency, lag in published["runs"]:
        lines.append(f"| GlassFlow {variant} | {millions:g} M | {publishers} | {source:,} | {processed:,} | {lag:g} | M2 Max, 12 cores |")
    if ours:
        lines.append(f"| **this pipeline** | {ours['records']:,} | {ours['publishers']} | {_n(ours['source_events_per_s'])} | "
                     f"**{_n(ours['pipeline_events_per_s'])}** | **{_n(ours['lag_s'])}** | 2 shared cores, load "
                     f"{_load(ours['load_average_1_5_15_at_start'])} → {_load(ours['load_average_1_5_15_at_end'])} |")
        fresh = ours.get("freshness_ms") or {}
        lines += ["", f"This pipeline's run: {ours['unique']:,} unique of {ours['records']:,} records "
                      f"({ours['duplicates']:,} duplicates); ClickHouse held exactly the unique total without FINAL: "
                      f"**{'yes' if ours['exactly_unique_total'] else 'no'}** ({ours['found_in_clickhouse']:,} found, "
                      f"{ours['late_events']:,} classed late). Pipeline /s counts every record, duplicates included, from the "
                      f"first sent to the unique total visible ({_n(ours['pipeline_unique_per_s'])} unique/s). Freshness of "
                      f"its rows p50 / p95 / p99: {_n(fresh.get('p50'))} / {_n(fresh.get('p95'))} / {_n(fresh.get('p99'))} ms. "
                      f"Records per CPU-second of the pipeline's components: {_n(ours.get('events_per_pipeline_cpu_s'))}. "
                      "Unlike GlassFlow's, each record also goes through two event-time temporal joins (profile, game), the "
                      "1-minute window aggregates and the Iceberg lake, and the whole platform shares 2 cores with the publisher."]
    return lines


def write(result: dict[str, Any], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "bench.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (directory / "bench.svg").write_text(render_svg(result["rates"]))
    (directory / "bench.md").write_text(render_markdown(result))
