"""The pure arithmetic of the end-to-end benchmark (benchmarks/e2e.py): percentiles, trends, rate stepping.

Kept apart from the run so that tests/unit/test_bench_e2e.py checks it without a platform.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

#: A step holds its rate when the producer reached this share of the target ...
MIN_ACHIEVED_SHARE = 0.9
#: ... freshness grew by less than this many seconds per second over the measured window ...
MAX_FRESHNESS_SLOPE = 0.05
#: ... and the consumer lag of the pipeline grew by less than this share of the rate per second.
MAX_LAG_GROWTH_SHARE = 0.05


def weighted_percentiles(samples: Iterable[tuple[float, int]], quantiles: Sequence[float] = (0.5, 0.95, 0.99)) -> dict[float, float]:
    """Percentiles of values each seen ``weight`` times: ``[(value, weight), ...]`` → ``{q: value}``.

    The q-th percentile is the smallest value with at least ``q`` of the total weight at or below it
    (nearest rank, no interpolation: every reported figure is one that was measured).
    """
    ordered = sorted((v, w) for v, w in samples if w > 0)
    total = sum(w for _, w in ordered)
    if not total:
        return {}
    out: dict[float, float] = {}
    for q in quantiles:
        rank = max(1, math.ceil(q * total))
        seen = 0
        for value, weight in ordered:
            seen += weight
            if seen >= rank:
                out[q] = value
                break
    return out


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of ``[(x, y), ...]``; 0 with fewer than two distinct x."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    if var == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var


def freshness_trend(appearances: Iterable[tuple[float, float, int]], bucket_s: float = 1.0) -> list[tuple[float, float]]:
    """Median freshness per ``bucket_s`` of event time: ``[(visible_at_s, event_time_s, rows), ...]`` → ``[(t, s), ...]``.

    The median per bucket keeps one slow batch from tilting the trend; the slope of the result says
    whether freshness grows while the rate is held (a pipeline falling behind).
    """
    buckets: dict[int, list[tuple[float, int]]] = {}
    for visible_at, event_time, rows in appearances:
        buckets.setdefault(int(event_time // bucket_s), []).append((visible_at - event_time, rows))
    return [(b * bucket_s, weighted_percentiles(values, (0.5,))[0.5]) for b, values in sorted(buckets.items())]


def lag_floor(samples: Iterable[tuple[float, dict[str, int | None]]], block_s: float) -> list[tuple[float, float]]:
    """The consumer lag's lower envelope: per ``block_s`` of time, each group's smallest lag, summed over the groups.

    ``[(t, {group: lag or None}), ...]`` → ``[(block middle, lag), ...]``. A Flink job's group lag is read from the
    offsets it commits when a checkpoint completes, so it rises by a checkpoint's worth of records and drops at each
    commit: ~20,000 records at ~8,000 events/s with 2-3 s checkpoints. Over a 40 s window that saw-tooth alone tilts
    a least-squares slope by hundreds of records/s either way (a run failed 8,000/s at +499/s, its freshness flat and
    the pipeline on 1.36 of the 2 cores). The low point of each block is where a group has just committed; a pipeline
    falling behind raises those too. A group without a reading in a block (no commit yet) is left out of that block.
    """
    blocks: dict[int, dict[str, float]] = {}
    for t, reading in samples:
        lows = blocks.setdefault(int(t // block_s), {})
        for group, lag in reading.items():
            if lag is not None:
                lows[group] = min(lows.get(group, lag), lag)
    return [((b + 0.5) * block_s, float(sum(lows.values()))) for b, lows in sorted(blocks.items()) if lows]


def events_per_cpu_s(events: float, cpu_s: dict[str, float], outside: Iterable[str] = ("benchmark",)) -> float | None:
    """Events per CPU-second the pipeline's components spent on them (the benchmark's own process left out).

    Unlike events per wall-clock second it hardly depends on what else the machine runs: the contention-robust
    figure on a shared machine.
    """
    spent = sum(v for k, v in cpu_s.items() if k not in set(outside))
    return round(events / spent) if spent > 0 else None


@dataclass(frozen=True)
class Verdict:
    held: bool
    reasons: tuple[str, ...]  # why not (empty when held)


def verdict(target: float, achieved: float, freshness_slope: float, lag_slope: float, all_visible: bool) -> Verdict:
    """Whether a step held its rate: the producer reached it, and neither freshness nor lag kept growing."""
    reasons = []
    if achieved < MIN_ACHIEVED_SHARE * target:
        reasons.append(f"producer reached {achieved:,.0f} of {target:,.0f} events/s")
    if freshness_slope > MAX_FRESHNESS_SLOPE:
        reasons.append(f"freshness grew {freshness_slope:.2f} s per s")
    if lag_slope > MAX_LAG_GROWTH_SHARE * max(achieved, 1.0):
        reasons.append(f"consumer lag grew {lag_slope:,.0f} records per s")
    if not all_visible:
        reasons.append("not every measured event was visible in ClickHouse before the drain deadline")
    return Verdict(not reasons, tuple(reasons))


def highest_held(steps: Iterable[dict], p99_ms_at_most: float | None = None) -> dict | None:
    """The held step with the highest rate produced; with ``p99_ms_at_most``, among those whose freshness p99 meets it."""
    def fresh_enough(step: dict) -> bool:
        p99 = step["freshness_ms"].get("p99")
        return p99_ms_at_most is None or (p99 is not None and p99 <= p99_ms_at_most)
    return max((s for s in steps if s["held"] and fresh_enough(s)), key=lambda s: s["achieved_events_per_s"], default=None)


def next_rate(steps: Sequence[tuple[float, bool]], start: float, factor: float, max_steps: int, resolution: float = 1.3) -> float | None:
    """The next target rate given ``[(rate, held), ...]`` so far, or None when the search is done.

    Up by ``factor`` while every step held; once one failed, bisect (geometrically) between the highest
    rate held and the lowest that failed until they are within ``resolution`` of each other. A first
    step that fails goes down by ``factor``.
    """
    if not steps:
        return start
    if len(steps) >= max_steps:
        return None
    held = [rate for rate, ok in steps if ok]
    failed = [rate for rate, ok in steps if not ok]
    best = max(held, default=None)
    worst = min((rate for rate in failed if best is None or rate > best), default=None)
    if worst is None:
        return best * factor
    if best is None:
        return worst / factor
    if worst / best <= resolution:
        return None
    return math.sqrt(best * worst)
