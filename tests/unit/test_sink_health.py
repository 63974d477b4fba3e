"""Freshness in `status`: per table, from recently loaded partitions only; aggregates reported apart."""

from connectors.sink.health import _table_freshness, _worst


def row(table: str, partition: int, freshness: float | None, age_s: float | None) -> tuple:
    return (table, table, partition, 0, None, freshness, age_s)


def test_an_idle_partitions_old_batch_does_not_count():
    rows = [row("game_streams_enriched", 0, 2.5, 3.0), row("game_streams_enriched", 1, 900.0, 3600.0)]
    assert _table_freshness(rows, 60) == {"game_streams_enriched": 2.5}


def test_a_table_is_as_fresh_as_its_worst_recent_partition():
    rows = [row("game_streams_enriched", 0, 2.5, 3.0), row("game_streams_enriched", 1, 4.0, 10.0), row("late_events", 0, None, 1.0)]
    assert _table_freshness(rows, 60) == {"game_streams_enriched": 4.0}


def test_minute_aggregates_are_reported_apart_from_event_level_tables():
    tables = {"game_streams_enriched": 3.0, "game_minute_stats": 65.0, "language_minute_stats": 70.0}
    assert _worst(tables, windowed=False) == 3.0
    assert _worst(tables, windowed=True) == 70.0
    assert _worst({}, windowed=False) is None
