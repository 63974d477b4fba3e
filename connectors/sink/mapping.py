"""Which Flink output topic goes to which ClickHouse table.

Adding a Flink output to the sink is one entry here plus one migration creating its table
(``connectors/clickhouse_migrations/NNN_<table>.sql``). The table's columns are read from ClickHouse
at start, so the mapping holds only what the schema cannot tell: the event-time column used to
measure freshness (event time → visible in ClickHouse).
"""

from __future__ import annotations

from dataclasses import dataclass

from twitch_pipeline.platform.process import PlatformError
from twitch_pipeline.settings import Settings


@dataclass(frozen=True)
class TableMapping:
    topic: str
    table: str
    event_time: str  # a DateTime64 column of the table; newest value per batch → freshness


MAPPINGS: tuple[TableMapping, ...] = (
    TableMapping("game_streams_enriched", "game_streams_enriched", "data_retrieved_at"),
    TableMapping("game_minute_stats", "game_minute_stats", "window_end"),
    TableMapping("language_minute_stats", "language_minute_stats", "window_end"),
    TableMapping("share_minute_stats", "share_minute_stats", "window_end"),
    TableMapping("stream_duration_stats", "stream_duration_stats", "window_end"),
    TableMapping("top_streams", "top_streams", "window_end"),
    TableMapping("late_events", "late_events", "detected_at"),
)


def selected_mappings(settings: Settings, mappings: tuple[TableMapping, ...] = MAPPINGS) -> tuple[TableMapping, ...]:
    """The mappings named by ``sink_topics`` (all of them when it is empty); an unknown name is an error."""
    wanted = [t.strip() for t in settings.sink_topics.split(",") if t.strip()]
    if not wanted:
        return mappings
    by_topic = {m.topic: m for m in mappings}
    unknown = [t for t in wanted if t not in by_topic]
    if unknown:
        raise PlatformError(
            f"TWITCH_PIPELINE_SINK_TOPICS names unmapped topics {', '.join(unknown)}; "
            f"mapped: {', '.join(by_topic)} (add an entry in connectors/sink/mapping.py)"
        )
    return tuple(by_topic[t] for t in dict.fromkeys(wanted))
