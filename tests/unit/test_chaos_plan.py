"""The chaos kill schedule: a pure function of the seed, with every component killed as often as asked."""

from __future__ import annotations

import pytest

from twitch_pipeline.chaos import DURING_CHECKPOINT, TARGETS, plan


@pytest.mark.parametrize("per_component", [1, 2, 3, 4])
def test_every_component_is_killed_as_often_as_asked(per_component):
    schedule = plan(7, per_component)
    for target in TARGETS:
        kills = [k for k in schedule if k.target == target]
        assert sum(k.times for k in kills) == per_component
        assert sum(1 for k in kills if k.times == 2) == (1 if per_component >= 2 else 0)  # two in a row
        assert sum(1 for k in kills if k.during_checkpoint) == (1 if target in DURING_CHECKPOINT else 0)
    assert [k.at for k in schedule] == sorted(k.at for k in schedule)
    assert all(0.05 <= k.at <= (0.6 if k.target == "producer" else 0.95) for k in schedule)


def test_a_seed_replays_its_schedule():
    assert [k.describe() for k in plan(4711, 3)] == [k.describe() for k in plan(4711, 3)]
    assert [k.describe() for k in plan(4711, 3)] != [k.describe() for k in plan(4712, 3)]


def test_cells_compare_alike_from_clickhouse_and_the_lake():
    import datetime as dt

    from twitch_pipeline.chaos import _comparable

    utc = dt.timezone.utc
    # ClickHouse gives an aware millisecond instant or a naive UTC one, the lake an aware microsecond one
    assert _comparable(dt.datetime(2026, 11, 29, 12, 0, 0, 123000, tzinfo=utc)) == _comparable(dt.datetime(2026, 11, 29, 12, 0, 0, 123000)) \
        == _comparable(dt.datetime(2026, 11, 29, 13, 0, 0, 123000, tzinfo=dt.timezone(dt.timedelta(hours=1))))
    assert _comparable(0.1 + 0.2) == _comparable(0.3) and _comparable(None) is None and _comparable("x") == "x"
